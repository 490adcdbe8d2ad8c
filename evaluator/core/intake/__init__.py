"""evaluator/core/intake"""
