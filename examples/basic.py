"""Send an identify, a track and a page, then close: the first events of a new app.

Run it against the local collector (`SEGMENT_HOST=http://127.0.0.1:PORT`) or your own
Segment source (`SEGMENT_WRITE_KEY=...`).
"""

from segment_client import Client

# Reads SEGMENT_WRITE_KEY (and SEGMENT_HOST, when set) from the environment.
client = Client()

client.identify("user-1", {"email": "ada@example.com", "plan": "pro"})
client.track("user-1", "Order Completed", {"revenue": 59.99, "currency": "USD"})
client.page("user-1", "Docs", "Quickstart", {"path": "/docs/quickstart"})

# Deliver what is queued and stop the background thread, waiting at most 5 seconds.
if client.close_and_flush(timeout=5):
    print("delivered:", client.stats().delivered)
else:
    print("not everything was delivered:", client.stats())
