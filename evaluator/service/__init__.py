"""evaluator/service"""
