"""Creates an Azure Blob container on Azurite (compose's azurite-init), waiting for the emulator.

Usage: create-container.py BLOB_URL ACCOUNT CONTAINER   (the key in $AZURITE_KEY)
Signs "Create Container" with Shared Key; an existing container is fine.
"""
import base64
import hashlib
import hmac
import os
import sys
import time
import urllib.error
import urllib.request
from email.utils import formatdate

url, account, container = sys.argv[1:4]
key = base64.b64decode(os.environ["AZURITE_KEY"])
deadline = time.time() + 120
while True:
    date = formatdate(usegmt=True)
    version = "2021-08-06"
    to_sign = ("PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n"
               + f"/{account}/{account}/{container}\nrestype:container")
    sig = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    req = urllib.request.Request(
        f"{url}/{account}/{container}?restype=container", method="PUT",
        headers={"x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
                 "Authorization": f"SharedKey {account}:{sig}"})
    try:
        urllib.request.urlopen(req, timeout=10)
        print(f"created container {container}")
        break
    except urllib.error.HTTPError as e:
        if e.code == 409:
            print(f"container {container} exists")
            break
        sys.exit(f"create container {container}: HTTP {e.code}: {e.read()[:300]!r}")
    except OSError as e:
        if time.time() > deadline:
            sys.exit(f"Azurite at {url} did not answer: {e}")
        time.sleep(1)
