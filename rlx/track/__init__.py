"""Tracking as a service below the stages: what every stage needs from MLflow that is not a stage's own logic.

- `journal`: tracking calls kept on local disk while the server is unreachable, and replayed in order later.
"""
