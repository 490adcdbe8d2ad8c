"""models/face"""
