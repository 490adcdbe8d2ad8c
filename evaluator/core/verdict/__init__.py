"""evaluator/core/verdict"""
