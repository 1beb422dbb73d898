"""MedGo gateway service."""
