"""The API's routers, one module per group; ``create_app`` includes each with one line."""
