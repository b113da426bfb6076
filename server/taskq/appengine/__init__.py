"""App Engine compatibility: the API bridge that Google's App Engine SDK calls (POST /rpc_http)
for its `taskqueue` service. Needs the `appengine` extra (the SDK's message definitions)."""
