"""`govgw web`: the service counter's page (issue 14).

A service hall is one counter caller of the gateway; its clerks sign in here
and check a citizen's identity without copying data. The page talks to the
gateway only through the SDK (web.gateway_client), as any agency system would.
"""
