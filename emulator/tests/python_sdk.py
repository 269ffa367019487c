"""Drive Microsoft's Python SDK (azure-identity, azure-keyvault-secrets) against kv-emulator.

Usage: python python_sdk.py KV_EMULATOR_BINARY

Starts the emulator with a seed of its own and trusts the emulator's CA through SSL_CERT_FILE
and REQUESTS_CA_BUNDLE. A wrapper around socket.getaddrinfo maps the vault and login host
names to the emulator in this process only. Every other name fails to resolve, so nothing
leaves the machine. Then ClientSecretCredential and SecretClient read a secret (the SDK first
sends the request without a token, reads the 401 challenge, requests a token and retries),
read an older version, miss a secret and hit a disabled one. Exits non-zero on any failure.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

TENANT_ID = "2d4c6e8a-1b3d-4f5a-8c7e-9a0b1c2d3e4f"
CLIENT_ID = "8f7e6d5c-4b3a-4291-8807-f6e5d4c3b2a1"
CLIENT_SECRET = "python-sdk-client-secret"
VAULT_NAME = "pysdk-vault"
VAULT_HOST = VAULT_NAME + ".vault.azure.net"
OLD_VERSION = "11111111111111111111111111111111"
NEW_VERSION = "22222222222222222222222222222222"
NEW_VALUE = "n\u00e9w-v\u00e4lue with = and \u5bc6\u7801"

SEED = {
    "tenants": [{"id": TENANT_ID}],
    "apps": [{"tenant": TENANT_ID, "client_id": CLIENT_ID, "client_secrets": [CLIENT_SECRET]}],
    "vaults": [
        {
            "name": VAULT_NAME,
            "tenant": TENANT_ID,
            "secrets": [
                {
                    "name": "plain",
                    "versions": [
                        {"id": OLD_VERSION, "value": "old-value"},
                        {"id": NEW_VERSION, "value": NEW_VALUE, "content_type": "text/plain"},
                    ],
                },
                {"name": "switched-off", "value": "unused", "enabled": False},
            ],
        }
    ],
}

EMULATED_HOSTS = {VAULT_HOST, "login.microsoftonline.com"}
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


def redirect_name_resolution(port):
    """Resolve the emulated hosts to 127.0.0.1:port and refuse every other name."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, service, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        name = (name or "").lower().rstrip(".")
        if name in EMULATED_HOSTS:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        if name in LOOPBACK_NAMES:
            return real_getaddrinfo(host, service, family, type, proto, flags)
        raise socket.gaierror(socket.EAI_NONAME, "name resolution blocked by the test: " + name)

    socket.getaddrinfo = getaddrinfo


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def exercise_sdk(ready):
    # Imported here so the environment and name resolution are in place first.
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    credential = ClientSecretCredential(TENANT_ID, CLIENT_ID, CLIENT_SECRET)
    client = SecretClient(vault_url="https://" + VAULT_HOST, credential=credential)

    latest = client.get_secret("plain")
    check(latest.value == NEW_VALUE, "latest value: %r" % latest.value)
    check(latest.properties.version == NEW_VERSION, "latest version: %r" % latest.properties.version)
    check(latest.properties.content_type == "text/plain", "content type: %r" % latest.properties.content_type)
    check(latest.properties.enabled is True, "enabled: %r" % latest.properties.enabled)
    check(latest.id == "https://%s/secrets/plain/%s" % (VAULT_HOST, NEW_VERSION), "id: %r" % latest.id)

    old = client.get_secret("PLAIN", version=OLD_VERSION)
    check(old.value == "old-value", "old value: %r" % old.value)

    try:
        client.get_secret("does-not-exist")
        raise AssertionError("reading a missing secret succeeded")
    except ResourceNotFoundError as error:
        check(error.status_code == 404, "missing status: %r" % error.status_code)
        check(error.error is not None and error.error.code == "SecretNotFound", "missing code: %r" % error.error)

    try:
        client.get_secret("switched-off")
        raise AssertionError("reading a disabled secret succeeded")
    except HttpResponseError as error:
        check(error.status_code == 403, "disabled status: %r" % error.status_code)
        check(error.error is not None and error.error.code == "Forbidden", "disabled code: %r" % error.error)
        check("disabled secret" in str(error), "disabled message: %s" % error)

    credential.close()
    client.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]

    with tempfile.TemporaryDirectory(prefix="python-sdk-seed-") as directory:
        seed_path = os.path.join(directory, "seed.json")
        with open(seed_path, "w", encoding="utf-8") as seed_file:
            json.dump(SEED, seed_file)

        emulator = subprocess.Popen(
            [binary, "--seed", seed_path, "--print-stats", "--exit-after", "120"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            ready = json.loads(emulator.stdout.readline())
            os.environ["SSL_CERT_FILE"] = ready["ca_file"]
            os.environ["REQUESTS_CA_BUNDLE"] = ready["ca_file"]
            redirect_name_resolution(ready["port"])
            exercise_sdk(ready)
        finally:
            emulator.stdin.close()
            stats_line = emulator.stdout.readline()
            emulator.wait(timeout=30)

    stats = json.loads(stats_line)["stats"]
    token_requests = stats["token_requests"]
    check(
        token_requests == [{"tenant": TENANT_ID, "resource": "https://vault.azure.net", "count": 1}],
        "one token request: %r" % token_requests,
    )
    # plain (challenge and retry), the old version, the missing and the disabled secret.
    check(stats["requests_by_host"].get(VAULT_HOST) == 5, "vault requests: %r" % stats["requests_by_host"])
    check(
        stats["requests_with_authorization"].get(VAULT_HOST) == 4,
        "exactly one vault request without a token: %r" % stats["requests_with_authorization"],
    )

    from importlib.metadata import version

    print(
        "python SDK against kv-emulator: ok (azure-identity %s, azure-keyvault-secrets %s)"
        % (version("azure-identity"), version("azure-keyvault-secrets"))
    )


if __name__ == "__main__":
    main()
