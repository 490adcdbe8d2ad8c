"""evaluator/batch"""
