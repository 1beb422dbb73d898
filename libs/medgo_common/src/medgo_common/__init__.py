"""The one library shared by MedGo services.

Services talk to each other over HTTP only; what they must agree on lives here and
nowhere else: wire schemas (`schemas`), the error envelope (`errors`), the PHI
redactor (`phi`), and the health/metrics/logging plumbing (`observability`).
"""
