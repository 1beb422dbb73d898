"""MedGo trainer service."""
