"""evaluator/core"""
