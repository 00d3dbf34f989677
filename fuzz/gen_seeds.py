#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ (run from anywhere).

The token seeds are signed the way latch signs (HS256, kid = base64url of the
first 8 bytes of SHA-256 of the key) with the fuzz target's key, [7u8; 32],
so the fuzzer starts from a token that verifies and mutates from there.
"""
import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([7] * 32)


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(payload: bytes, key: bytes = KEY) -> str:
    kid = b64url(hashlib.sha256(key).digest()[:8])
    header = b64url(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode()
    )
    signed = f"{header}.{b64url(payload)}"
    tag = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64url(tag)}"


def claims(**over) -> bytes:
    c = {"sub": "7", "name": "alice", "iat": 1690000000, "exp": 4000000000,
         "jti": b64url(bytes([9] * 16))}
    c.update(over)
    # serde_json's compact form, fields in struct order.
    return json.dumps(c, separators=(",", ":"), ensure_ascii=False).encode()


def write(target: str, name: str, data) -> None:
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main() -> None:
    valid = sign(claims())
    write("token", "valid", valid)
    write("token", "valid-unicode-name", sign(claims(name="émile")))
    write("token", "expired", sign(claims(exp=1000)))
    write("token", "bad-sub", sign(claims(sub="007")))
    write("token", "bad-jti", sign(claims(jti="AAAA")))
    write("token", "other-key", sign(claims(), key=bytes([8] * 32)))
    h, p, s = valid.split(".")
    none = b64url(b'{"alg":"none","typ":"JWT"}')
    write("token", "alg-none", f"{none}.{p}.")
    write("token", "bad-mac", f"{h}.{p}.{b64url(bytes(32))}")

    # token_claims: the payload (claims JSON) itself; the target signs it.
    write("token_claims", "valid", claims())
    write("token_claims", "escapes", '{"sub":"7","name":"\\u00e9\\ud83d\\ude00\\n é","iat":1,'
          '"exp":4000000000,"jti":"CQkJCQkJCQkJCQkJCQkJCQ"}')
    write("token_claims", "expired", claims(exp=1000))
    write("token_claims", "big-numbers", claims(sub="18446744073709551615", iat=2**64 - 1, exp=2**64 - 1))
    write("token_claims", "reordered", b'{"jti":"CQkJCQkJCQkJCQkJCQkJCQ","exp":4000000000,"iat":1,"name":"a","sub":"7"}')
    write("token_claims", "extra-field", b'{"sub":"7","name":"a","iat":1,"exp":4000000000,"jti":"CQkJCQkJCQkJCQkJCQkJCQ","admin":true}')

    cred = {
        "bearer": f"Bearer {valid}",
        "basic": "Basic " + base64.b64encode(b"alice:s3cret:with:colons").decode(),
        "basic-token": "Basic " + base64.b64encode(f"{valid}:unused".encode()).decode(),
        "basic-apikey": "Basic " + base64.b64encode(b"latch_abcdef:").decode(),
        "basic-utf8": "Basic " + base64.b64encode("émile:pässwörd".encode()).decode(),
        "cookie": f'a=1; latch_session="{valid}"; b=2',
        "query": "a=1&auth_token=x%2Ey%2Bz&b=+2",
        "form": "username=al%20ice&password=p%C3%A4ss+word&rd=https%3A%2F%2Fapp.example.com%2F",
        "apikey": "latch_0123456789abcdef",
    }
    for name, text in cred.items():
        write("credentials", name, text)

    for i, url in enumerate([
        "https://example.com",
        "https://app.example.com/path?q=1#frag",
        "HTTPS://A.B.Example.COM:8443/x",
        "http://app.example.com/",
        "https://[::1]:443/",
        "https://example.com.evil.com/",
        "https://user:pw@app.example.com/",
        "https://app.example.com\\@evil.com",
        "//evil.com",
        "javascript:alert(1)",
        "https://app.example.com/@evil.com?x=@#@",
        "https://a..example.com:0/",
        "https://x;y.example.com/",
        "https://[::ffff:1.2.3.4]/.example.com",
        "https://example.com:8443?q",
    ]):
        write("redirect", f"url{i}", url)

    write("config", "full", """\
listen = "127.0.0.1:8080"
data_dir = "./latch-data"
secret_key = "%s"
public_url = "https://auth.example.com"
token_ttl = "10m"
registration = "open"
query_token = false
log_level = "debug"

[scrypt]
log_n = 4
r = 8
p = 1
max_concurrent = 2
max_queue = 64

[limits]
max_body = 16384
header_read_timeout = 10

[forward_auth]
cookie_domain = ".Example.com"
cookie_name = "latch_session"
cookie_secure = true
session_ttl = "12h"
login_url = "https://auth.example.com/login"
trusted_proxies = ["127.0.0.0/8", "::1", "fd00::/8"]
""" % base64.b64encode(bytes(range(32))).decode())
    write("config", "empty", "")
    with open(os.path.join(HERE, "..", "config", "latch.toml"), "rb") as f:
        write("config", "shipped", f.read())
    write("config", "file-key", 'secret_key_file = "/etc/latch/key"\ntoken_ttl = 3600\n')


if __name__ == "__main__":
    main()
