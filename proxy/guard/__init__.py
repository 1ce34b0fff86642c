"""The login guard: progressive, outcome-aware brute-force backoff in front of Kratos' login.

handler ──► classify (what was submitted, what Kratos answered)      pure
   │   ──► identity (normalised identifier, HMAC bucket names)       pure
   │   ──► core.Guard ──► policy (backoff arithmetic)                pure
   │                  └─► store (Redis Lua | in-memory | degraded in-process limiter)
   └──► respond (blocked answers in the caller's own Kratos format)
"""
