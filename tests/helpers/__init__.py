"""Helpers shared by test modules. Tests import these, never another test module."""
