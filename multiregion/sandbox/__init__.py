"""The embedded sandbox: a local multi-region AWS on 127.0.0.1, built on moto plus what moto lacks.

`control` starts, finds and stops a sandbox process and needs nothing beyond the standard library; the
server itself (`server`, `app` and the extensions) needs the `sandbox` extra (moto).
"""
