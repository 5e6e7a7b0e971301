"""Secrets of every kind airlock masks, and ordinary text it must leave alone.

Shared by the tests (each sample planted in every sink, each needle grepped for) and the
redaction benchmark (secret-dense text is made of these). Every value is made up in the
format of the real thing; none is a live credential.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

__all__ = ["ORDINARY", "SAMPLES", "SecretSample", "ordinary_text", "secret_dense_text"]


@dataclass(kw_only=True, frozen=True)
class SecretSample:
    """A secret as it appears in the wild, and the part of it that must never be seen."""

    kind: str
    text: str
    needle: str
    """Distinct from every other needle; never part of a prefix masking keeps (``xoxb-``)."""


_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJVMEFJUkxPQ0siLCJzY29wZSI6ImRlcGxveTpwcm9kIiwiaWF0IjoxNzY3MjI1NjAwfQ."
    "_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1VOqg6YYZ"
)
_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jj0Ih9Gg8Ff7Ee6Dd5Cc4Bb3Aa2\n"
    "Qp9Ko8Jn7Im6Hl5Gk4Fj3Ei2Dh1Cg0Bf9Ae8Zd7Yc6Xb5Wa4Vz3Uy2Tx1Sw0Rv+Q=\n"
    "-----END RSA PRIVATE KEY-----"
)


def _pem(label: str, *lines: str) -> str:
    return "\n".join((f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"))


_SAMPLES: list[tuple[str, str, str]] = [
    ("slack bot token xoxb", "xoxb-2047381925-7314859203746-Hq3bVnR8sLkW2pXcT9yZmA4d",
     "Hq3bVnR8sLkW2pXcT9yZmA4d"),
    ("slack user token xoxp",
     "xoxp-2047381925-3381926604-7314859203811-4f9c2a7e1b3d5f6a8c0e2b4d6f8a1c3e",
     "4f9c2a7e1b3d5f6a8c0e2b4d6f8a1c3e"),
    ("slack workspace token xoxa", "xoxa-2-2047381925-7314859203912-Kp2Lm4Nq6Rs8Tu0Vw",
     "Kp2Lm4Nq6Rs8Tu0Vw"),
    ("slack refresh token xoxr", "xoxr-2047381925-Zy9Xw8Vu7Ts6Rq5Po4Nm", "Zy9Xw8Vu7Ts6Rq5Po4Nm"),
    ("slack session token xoxc",
     "xoxc-2047381925-3381926604-7314859204021-b7e2f9a1c4d8e3f6a0b5c9d2e7f1a4b8c3d6e9f2",
     "b7e2f9a1c4d8e3f6a0b5c9d2e7f1a4b8"),
    ("slack session cookie xoxd", "d=xoxd-Qm3Rk7Tp2Wv9Yx4Zb6Nc8Jd1Fh5Gl0%2BSs3Aa7Ee9%2F%3D%3D",
     "Qm3Rk7Tp2Wv9Yx4Zb6Nc8Jd1Fh5Gl0"),
    ("slack app-level token xapp",
     "xapp-1-A07H3K9LQ2M-7314859204133-e3c1a5b7d9f2e4c6a8b0d1f3e5c7a9b2d4f6e8c0a1b3d5f7",
     "e3c1a5b7d9f2e4c6a8b0d1f3e5c7a9b2"),
    ("slack webhook", "https://hooks.slack.com/services/T02ABCDEF12/B07GHIJKL34/Xy7Zq9Wr2Ts4Uv6Np8Lm0Kj1",
     "Xy7Zq9Wr2Ts4Uv6Np8Lm0Kj1"),
    ("anthropic key",
     "sk-ant-api03-Rf8kLq2Zt5Wn9Xc3Vb7Nm1Pj4Hs6Dg0Ka8Yu2Ie5Ow9Tr3Ql7Zx1Cv4Bn6Mj8Kh0Gf2Ds5Ap9Lw3Q"
     "e7Rt1Yu4Io6Pz8Xc2Vb5Nm9Jk3Hg7Fd1Sa4Wq6Ez-AA", "Rf8kLq2Zt5Wn9Xc3Vb7Nm1Pj4Hs6Dg0"),
    ("openai legacy key", "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",
     "Ab1Cd2Ef3Gh4Ij5Kl6MnT3BlbkFJ"),
    ("openai project key", "sk-proj-Vq4Xn8Bz1Lm5Kc9Wr2Ty6Hs0Jd3Fg7Pa-Qe1Ru5Ti9Oy3Lp7Zk_2Xm6Cn0Bv4",
     "Vq4Xn8Bz1Lm5Kc9Wr2Ty6Hs0Jd3Fg7Pa"),
    ("stripe live secret key",
     "sk_live_51Hc8Kq2LmN4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI4jK6lM8nO0pQ2rS4tU6vW8xY0zA2bC4dE6f",
     "51Hc8Kq2LmN4pQ6rS8tU0vW2"),
    ("stripe restricted key", "rk_live_51Hc8Kq2LmN9zY7xW5vU3tS1rQ9pO7nM5lK3jI1hG9fE7dC5bA3",
     "51Hc8Kq2LmN9zY7xW5vU3tS1"),
    ("github classic token", "ghp_R7nT2kQ9wL4xZ8vB3mC6pD1sF5hJ0gK2aY4e",
     "R7nT2kQ9wL4xZ8vB3mC6pD1sF5hJ0gK2aY4e"),
    ("github oauth token", "gho_M3bV6cX9zL2kJ5hG8fD1sA4qW7eR0tY3uI6o9",
     "M3bV6cX9zL2kJ5hG8fD1sA4qW7eR0tY3"),
    ("github fine-grained token",
     "github_pat_11ABCDE2F0Zx9Yw8Vu7Ts6Rq5_Yn9ZhyiA4uoRgnatmUdjAWtGSU8po799NksnRH9ucAUsdMlHUvTCQ",
     "11ABCDE2F0Zx9Yw8Vu7Ts6Rq5"),
    ("gitlab token", "glpat-Xk9Lm2Qp5Rs8Tv1Wy4Za", "Xk9Lm2Qp5Rs8Tv1Wy4Za"),
    ("aws access key id", "aws_access_key_id = AKIAZ7Q4LMN2P8R6T3VX", "Z7Q4LMN2P8R6T3VX"),
    ("aws secret key by name", "aws_secret_access_key = Hb8Kq3Lm7Np2Rs5Tv9Wx1Yz4Ac6Df0Gh3Jk8Lm5P",
     "Hb8Kq3Lm7Np2Rs5Tv9Wx1Yz4Ac6Df0Gh3Jk8Lm5P"),
    ("aws secret key bare, beside its key id",
     "backup job credentials: AKIAQ3W5E7R9T2Y4U6I8 Pz4Xc7Vb1Nm5Lk8Jh2Gf6Ds9Aq3Wr7Et1Yu5Io8P",
     "Pz4Xc7Vb1Nm5Lk8Jh2Gf6Ds9Aq3Wr7Et1Yu5Io8P"),
    ("google api key", "AIzaSyD4kR7nQ2wL9xT5vB8mC3pF6sH1jG0aZ4e",
     "SyD4kR7nQ2wL9xT5vB8mC3pF6sH1jG0aZ4e"),
    ("google oauth client secret", "GOCSPX-EN5N1aE6PwZPf1Qh6yYTWmE4lBY",
     "EN5N1aE6PwZPf1Qh6yYTWmE4lBY"),
    ("jwt", _JWT, "_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1VOqg6YYZ"),
    ("pem rsa private key", _RSA, "Qp9Ko8Jn7Im6Hl5Gk4Fj3Ei2Dh1Cg0Bf9Ae8Zd7"),
    ("pem ec private key", _pem("EC PRIVATE KEY",
     "MHcCAQEEIBbhBJ4wknyewXI/MEcig/0J3GDNus77Lq3Ww8Ee2Rr5Tt9Yy1Uu4Ii6Oo",
     "AwEHoUQDQgAEPtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA"), "PtYgjmUhBel31iEl2hpChYgCfrL1"),
    ("pem pkcs8 private key", _pem("PRIVATE KEY",
     "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDL3xN8qW2e",
     "R5Kjp1vRt1fjORS6ilI8ihN5KXSc7TvoZk4Xm8Nq2Pw6Rt0Vy3Bs7Dh1"), "R5Kjp1vRt1fjORS6ilI8ihN5KXSc7"),
    ("pem encrypted private key", _pem("ENCRYPTED PRIVATE KEY",
     "MIIFNTBfBgkqhkiG9w0BBQ0wUjAxBgkqhkiG9w0BBQwwJAQQ9Yy8Uu7Ii6Oo5Pp4",
     "Wq3Ee2Rr1Tt0Yy9Uu8Ii7Oo6Pp5Aa4Ss3Dd2Ff1Gg0Hh9Jj8Kk7Ll6"), "Wq3Ee2Rr1Tt0Yy9Uu8Ii7Oo6Pp5"),
    ("openssh private key", _pem("OPENSSH PRIVATE KEY",
     "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
     "QyNTUxOQAAACBm9Xq2Lp7Zk3Wc5Vn8Rt1Yb4Hs6Jd0Fg2Ka9Mx3Eu7Po1"),
     "Bm9Xq2Lp7Zk3Wc5Vn8Rt1Yb4Hs6Jd0"),
    ("pgp private key block", _pem("PGP PRIVATE KEY BLOCK", "",
     "lQOYBGXyZ0sBCADkq7Hn2Vb5Cx8Zl3Mw6Pr9Ts1Yu4Io7Ea0Sd2Fg5Hj8Kl",
     "=Ab12"), "lQOYBGXyZ0sBCADkq7Hn2Vb5Cx8Zl3Mw6Pr9"),
    ("pem private key cut short", _RSA[:90],
     "MIIEowIBAAKCAQEA0Zx8Yw7Vu6Ts5Rq4Po3Nm2"),
    ("private key body without its header",
     "key material: MIIEogIBAAKCAQEAy94aGvb/9WAxMIOpKGnXLkfHr8Uu2Ii5Oo7Pp1Aa3Ss6Dd9",
     "y94aGvb/9WAxMIOpKGnXLkfHr8Uu2Ii5Oo7"),
    ("basic-auth url", "git clone https://deploy-bot:Gh7!kL9$mN2p@git.example.com/acme/web.git",
     "Gh7!kL9$mN2p"),
    ("postgres url", "postgres://app_user:Pq8Wz3Xr5Tn1@db.internal:5432/orders", "Pq8Wz3Xr5Tn1"),
    ("mysql url", "mysql://root:My5qlR00tPw!@10.0.0.7:3306/app", "My5qlR00tPw!"),
    ("mongodb url", "mongodb+srv://svc:M0ng0Atl4sPw@cluster0.ab1cd.mongodb.net/db", "M0ng0Atl4sPw"),
    ("redis url without a user", "redis://:R3d1sPa55w0rdX@cache.internal:6379/0", "R3d1sPa55w0rdX"),
    ("azure storage connection string",
     "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=PtYgjmUhBel31iEl2hpChYgCfrL1spNx"
     "nyVmihA/2O76UMFxFkM/R5Kjp1vRt+1fjORS/6ilI8ihN5KXSc7Tvo==;EndpointSuffix=core.windows.net",
     "nyVmihA/2O76UMFxFkM/R5Kjp1vRt"),
    ("azure sas signature",
     "https://acme.blob.core.windows.net/logs?sv=2022-11-02&sp=rl&sig=Xk9%2BLm2Qp5Rs8Tv1Wy4ZaB3cD6eF7gH8iJ%3D",
     "Lm2Qp5Rs8Tv1Wy4ZaB3cD6eF7gH8iJ"),
    ("twilio api key", "SK4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"),
    ("twilio auth token by name", "TWILIO_AUTH_TOKEN=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
     "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("sendgrid key", "SG.Ab1Cd2Ef3Gh4Ij5Kl6Mn7O.Pq8Rs9Tu0Vw1Xy2Za3Bc4De5Fg6Hi7Jk8Lm9No0Pq1Rs2T",
     "Pq8Rs9Tu0Vw1Xy2Za3Bc4De5Fg6Hi7Jk8Lm9No0"),
    ("npm token", "npm_Xy7Zq9Wr2Ts4Uv6Np8Lm0Kj1Hg3Fd5Sa7Qe9",
     "Xy7Zq9Wr2Ts4Uv6Np8Lm0Kj1Hg3Fd5Sa7Qe9"),
    ("npmrc auth line", "//registry.npmjs.org/:_authToken=c0ffee00-1234-5678-9abc-def012345678",
     "c0ffee00-1234-5678-9abc-def012345678"),
    ("pypi token",
     "pypi-AgEIcHlwaS5vcmcCJDk0ZTY2Yn9ZhyiA4uoRgnatmUdjAWtGSU8po-799NksnRH9ucAUsdMlHUvTC"
     "QCyEZDz_TddJ8HyS5SUkCnD8zRA", "Yn9ZhyiA4uoRgnatmUdjAWtGSU8po"),
    ("telegram bot token", "7314859203:AAHk9Lm2Qp5Rs8Tv1Wy4ZaB3cD6eF7gH8iJ",
     "AAHk9Lm2Qp5Rs8Tv1Wy4ZaB3cD6e"),
    ("mailchimp key", "0f1e2d3c4b5a69788796a5b4c3d2e1f0-us14", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
    ("password by name", "DB_PASSWORD=Xq9!vR2#mL5p&z", "Xq9!vR2#mL5p&z"),
    ("password quoted with spaces", '{"password": "correct horse battery staple"}',
     "correct horse battery staple"),
    ("client secret by name", "client_secret: 8Yp3Wq6Er9Ty2Ui5Op8As1Df",
     "8Yp3Wq6Er9Ty2Ui5Op8As1Df"),
    ("api key by name", "api_key='Zx4Cv7Bn0Mm3Ll6Kk9Jj'", "Zx4Cv7Bn0Mm3Ll6Kk9Jj"),
    ("token in an env line", "export DEPLOY_TOKEN=Dt7Yu2Io5Pa8Sd1Fg4Hj", "Dt7Yu2Io5Pa8Sd1Fg4Hj"),
    ("password flag", "mysqladmin --password 'S3cr3t-Pa55w0rd' status", "S3cr3t-Pa55w0rd"),
    ("access token in a query string", "GET /v1/feed?access_token=At9Sx2Dc5Fv8Gb1Hn4Jm7K&page=2",
     "At9Sx2Dc5Fv8Gb1Hn4Jm7K"),
    ("bearer header", "Authorization: Bearer Zk4Xm8Nq2Pw6Rt0Vy3Bs7Dh1", "Zk4Xm8Nq2Pw6Rt0Vy3Bs7Dh1"),
    ("basic header", "Authorization: Basic YWRtaW46U3VwM3JTM2NyM3Q=", "YWRtaW46U3VwM3JTM2NyM3Q"),
    ("curl user and password", "curl -u admin:Adm1nPassw0rd https://api.example.com/v1",
     "Adm1nPassw0rd"),
]  # fmt: skip

SAMPLES: tuple[SecretSample, ...] = tuple(
    SecretSample(kind=kind, text=text, needle=needle) for kind, text, needle in _SAMPLES
)
"""One sample per kind of secret, as it would appear in a goal, an output or a log."""

ORDINARY: tuple[str, ...] = (
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (HEAD -> main, origin/main)",
    "deployed 3f4e2a1 to prod; previous 3f4e2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
    "request 123e4567-e89b-12d3-a456-426614174000 and trace 550e8400-e29b-41d4-a716-446655440000",
    "image ghcr.io/acme/web@sha256:"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "system_sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    'data = base64.b64decode("aGVsbG8gd29ybGQ=")  # "hello world", not a secret',
    "etag W/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdo for the cached page",
    "run_4kq0x8tq3m2a asked apr_1a2b3c4d5e6f; event evt_0f1e2d3c4b5a",
    "toolu_01A09q90qw90lq917835lq9 answered msg_01XFDUDYJgAACzvnptvVoYEL",
    "<@U012AB3CD> in <#C0123ABCD> at 1712345678.123456",
    "git@github.com:acme/web.git and ssh://git@github.com/acme/web.git",
    "see https://github.com/acme/web/pull/42 and https://example.com:8443/a?b=1&c=2",
    "postgres://db.internal:5432/orders has no credentials in it",
    "mail alice@example.com or ops+pager@example.org",
    "kubectl rollout restart deploy/web --context prod",
    "kubectl get secret db-creds -o yaml; kubectl create secret generic app --from-literal=pw=$PW",
    "the password policy changed; rotate the secret tomorrow; the token expired",
    "max_tokens: 4096, input_tokens=12345678, token_budget 2000000",
    "Authorization header is required; bearer instrument; basic auth is disabled",
    "pip install scikit-learn; the task-runner-0123456789abcdef0123 finished; disk-usage ok",
    "AWS region us-east-1 in Asia? no: ap-southeast-1. The private key is kept in Vault.",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAy94aGvb/9WAxMIOp\n"
    "-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQG\n"
    "-----END CERTIFICATE-----",
    "10.0.0.12:8080 and [2001:db8::1]:443 answered in 12 ms at 2026-11-26T10:15:00Z",
    '{"level": "INFO", "logger": "agent_core.runs.runner", "message": "run finished",'
    ' "cost": 0.0123}',
    "PuTTY is installed; AccountName=acme; the signature sig is checked",
    "--token-file /etc/airlock/token --password-file /etc/airlock/pw",
    "Uploaded 4 files (1.2 MB); 3 tests passed, 0 failed",
)
"""Text that must come out of redaction unchanged: ids, digests, SHAs, URLs, prose."""


def ordinary_text(size: int) -> str:
    """About ``size`` characters of ordinary ops text (log lines, ids, prose), no secret."""
    return _filled(ORDINARY, size)


def secret_dense_text(size: int) -> str:
    """About ``size`` characters where every line holds a secret, of every kind in turn."""
    return _filled([f"found {s.text} in the config" for s in SAMPLES], size)


def _filled(lines: list[str] | tuple[str, ...], size: int) -> str:
    out: list[str] = []
    length = 0
    for line in itertools.cycle(lines):
        if length >= size:
            break
        out.append(line)
        length += len(line) + 1
    return "\n".join(out)
