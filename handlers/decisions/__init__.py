"""Decisions: the ForwardAuth / auth_request / forward_auth / registry-authz endpoint.

request.py   what is being decided (forwarded headers, trusted proxies only)
rules*.py    the access rules, their TOML file and hot reload (reload.py)
authenticators.py → kernel.sessions (Kratos) / kernel.tokens (tokens)   who is asking
authorizers.py, remote.py, ratelimit.py                      may they pass
headers.py, errors.py                                       how the answer is said
handler.py, install.py                                      the endpoint and its wiring
"""
