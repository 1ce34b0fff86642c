"""Request targets whose meaning Go's router (Kratos' own, the oracle) decides, shared by the
parity tests, which prove it against the oracle, and the wire tests, which prove the public
listener judges each the same way."""

# Targets Go's router (the oracle) serves as the login handler; the wire path hooks the
# origin-form ones and refuses the absolute forms (tests/wire/test_hooked.py).
LOGIN_FORMS = [
    "//self-service/login",
    "/self-service/./login",
    "/x/../self-service/login",
    "/self-service/%2e/login",
    "/self-service/%2E/login",
    "/self-service/login/../login",
    "/self-service%2Flogin",
    "/self-service%2flogin",
    "/%73elf-service/log%69n",
    "/self-service//login",
    "/./self-service/login",
    "http://evil.example/self-service/login",
    "HTTP://evil.example:80//self-service/./login",
    "x:/self-service/login",
]


# Targets Go's router refuses (400); the wire path refuses them too.
REFUSED_FORMS = ["/self-service/%zz/login", "/self-service/login%", "/self-service/\x00login"]
