"""MedGo feedback service."""
