"""Framework integrations: Django, Flask, ASGI (FastAPI, Starlette), Celery, AWS Lambda.

Each lives in its own module and imports its framework there, so import the one you use:

```python
from segment_client.integrations.flask import Segment
```

This package imports nothing itself: `import segment_client` never loads a framework.
A module whose framework is missing raises `segment_client.MissingDependencyError`
naming the extra to install, e.g. `pip install 'segment-client[django]'`.
"""
