"""A script written for analytics-python (segment-analytics-python), unchanged.

tests/test_analytics_module.py runs it with only its import line replaced by
`import segment_client.analytics as analytics`. The host comes from ANALYTICS_HOST
(the test's local collector).
"""

import datetime
import os
import sys

import segment.analytics as analytics

failures = []


def on_error(error, items):
    failures.append(error)
    print("An error occurred:", error, file=sys.stderr)


analytics.write_key = "YOUR_WRITE_KEY"
analytics.host = os.environ["ANALYTICS_HOST"]
analytics.debug = True
analytics.on_error = on_error
analytics.max_queue_size = 5000
analytics.timeout = 5
analytics.max_retries = 3
analytics.gzip = True

signed_up = datetime.datetime(2026, 11, 2, 9, 30, tzinfo=datetime.timezone.utc)

analytics.identify(
    "019mr8mf4r",
    {"email": "john@example.com", "name": "John Smith", "friends": 30},
    {"ip": "192.168.0.1"},
)
analytics.track("f4ca124298", "Signed Up", {"plan": "Enterprise"}, None, signed_up)
analytics.track(
    "f4ca124298", "Article Bookmarked",
    {"title": "Snow Fall", "subtitle": "The Avalanche at Tunnel Creek", "author": "John Branch"},
    integrations={"All": False, "Mixpanel": True},
)
analytics.track(anonymous_id="a-1234", event="Viewed Pricing", properties={"tier": 2})
analytics.group("019mr8mf4r", "8e9df332ac", {"name": "Initech", "industry": "Technology"})
analytics.page("019mr8mf4r", "Docs", "Python", {"url": "http://segment.com"})
analytics.screen("019mr8mf4r", "Onboarding", "Welcome", {"step": 1})
analytics.alias("anonymous-9", "019mr8mf4r")

analytics.flush()
analytics.shutdown()
print("failures:", len(failures))
