"""Close the loop: re-judge stored results under other thresholds (``imagejury rescore``)
and fit those thresholds to people's labels (``imagejury calibrate``).

Both read only what the judges recorded (``JudgeResult.measurements`` and
``decision_rule``): no image is decoded and no model is run again.
"""
