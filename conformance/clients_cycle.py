#!/usr/bin/env python3
"""Helpers for conformance/clients.sh, and the boto3 client cycle.

Subcommands (each exits non-zero with a message on stderr when something is wrong):

  freeport                      print a free TCP port on 127.0.0.1
  waitport PORT SECONDS         wait until 127.0.0.1:PORT accepts connections
  mktree DIR                    write a file tree with random content (keys with spaces,
                                unicode and '+'), one file of a few MiB (below 8 MiB)
  mutate DIR                    change one file, add one, delete one (for sync checks)
  manifest DIR                  print "sha256  relative/path" for every file, sorted
  same DIR_A DIR_B              compare two trees byte for byte (via sha256)
  mpu-etag FILE PART_BYTES      print the ETag S3 gives FILE uploaded in parts of PART_BYTES:
                                "<MD5 of the part MD5s>-<N>", quoted
  selfsigned DIR                write ca.pem, cert.pem, key.pem for 127.0.0.1/localhost
                                (needs the `cryptography` package)
  boto3-cycle STEP ...          one step of the boto3 cycle (see BOTO3_STEPS below)
  boto3-tls STEP                one step of the boto3 put/get over HTTPS

The gateway endpoint and keys come from the environment: HANSA_ENDPOINT, HANSA_TLS_ENDPOINT,
HANSA_CA_BUNDLE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
"""

import base64
import hashlib
import json
import os
import socket
import sys
import time
import zlib

# Keys a real tree may hold: nested directories, spaces, unicode (NFC), '+', '=' and '&'.
TREE_DIRS = [
    "",
    "docs",
    "docs/reports 2024",
    "photos/été",
    "日本語/サブ",
    "deep/a/b/c",
]
TREE_NAMES = [
    "readme.txt",
    "file with spaces.txt",
    "ünïcödé-ñame.bin",
    "a+b=c&d.dat",
    "данные.csv",
]
BIG_NAME = "big/blob of 5MiB.bin"
BIG_SIZE = 5 * 1024 * 1024 + 12345  # a few MiB, below the 8 MiB multipart threshold


def die(msg):
    print(f"clients_cycle: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# file trees


def mktree(root):
    os.makedirs(root, exist_ok=True)
    count = 0
    for d in TREE_DIRS:
        for i, name in enumerate(TREE_NAMES):
            path = os.path.join(root, d, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            size = (count * 7919) % 20000 + i  # 0 .. ~20 KB, one empty file
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            count += 1
    path = os.path.join(root, BIG_NAME)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(BIG_SIZE))
    count += 1
    return count


MUTATE_CHANGE = "docs/file with spaces.txt"
MUTATE_ADD = "photos/été/nouveau fichier ✓.txt"
MUTATE_DELETE = "deep/a/b/c/данные.csv"


def mutate(root):
    with open(os.path.join(root, MUTATE_CHANGE), "wb") as f:
        f.write(b"changed " + os.urandom(3000))
    with open(os.path.join(root, MUTATE_ADD), "wb") as f:
        f.write(os.urandom(4321))
    os.remove(os.path.join(root, MUTATE_DELETE))


def files(root):
    """Relative path (with '/') → sha256 hex, for every file under root."""
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            h = hashlib.sha256()
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[rel] = h.hexdigest()
    return out


def manifest(root):
    for rel, digest in sorted(files(root).items()):
        print(f"{digest}  {rel}")


def same(a, b):
    fa, fb = files(a), files(b)
    problems = []
    for k in sorted(set(fa) - set(fb)):
        problems.append(f"missing in {b}: {k!r}")
    for k in sorted(set(fb) - set(fa)):
        problems.append(f"unexpected in {b}: {k!r}")
    for k in sorted(set(fa) & set(fb)):
        if fa[k] != fb[k]:
            problems.append(f"content differs: {k!r} ({fa[k][:12]} vs {fb[k][:12]})")
    if problems:
        die(f"trees differ ({len(problems)} problems):\n  " + "\n  ".join(problems[:20]))
    print(f"{len(fa)} files identical (sha256)")


def mpu_etag(path, part_bytes):
    part_bytes = int(part_bytes)
    md5s = []
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(part_bytes), b""):
            md5s.append(hashlib.md5(block).digest())
    print(f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"')


# ---------------------------------------------------------------------------------------------
# network helpers


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def waitport(port, seconds):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    die(f"nothing answers on 127.0.0.1:{port} after {seconds}s")


def selfsigned(outdir):
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hansa conformance CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(os.path.join(outdir, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(outdir, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(os.path.join(outdir, "key.pem"), "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


# ---------------------------------------------------------------------------------------------
# boto3


def client(tls=False, **extra):
    import boto3
    from botocore.config import Config

    if os.environ.get("HANSA_BOTO_DEBUG"):
        boto3.set_stream_logger("botocore", 10)
    cfg = Config(
        **extra,
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    if tls:
        return boto3.client(
            "s3",
            endpoint_url=os.environ["HANSA_TLS_ENDPOINT"],
            verify=os.environ["HANSA_CA_BUNDLE"],
            config=cfg,
        )
    return boto3.client("s3", endpoint_url=os.environ["HANSA_ENDPOINT"], config=cfg)


def transfer_config():
    from boto3.s3.transfer import TransferConfig

    # Multipart upload is not implemented in the gateway yet (issue 4): single PUTs only.
    return TransferConfig(multipart_threshold=5 * 1024**3, use_threads=False)


def listed_keys(s3, bucket, prefix=""):
    keys = {}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 7}
    )
    for page in pages:
        for o in page.get("Contents", []):
            if o["Key"] in keys:
                die(f"key listed twice across pages: {o['Key']!r}")
            keys[o["Key"]] = o
    return keys


def expect_same_keys(got, local_root, prefix):
    want = {prefix + k for k in files(local_root)}
    got = set(got)
    if got != want:
        die(
            "listing differs from the local tree:\n"
            f"  missing: {sorted(want - got)[:10]}\n  unexpected: {sorted(got - want)[:10]}"
        )


def upload_tree(s3, bucket, root, prefix):
    for rel in sorted(files(root)):
        s3.upload_file(
            os.path.join(root, rel), bucket, prefix + rel, Config=transfer_config()
        )


def download_tree(s3, bucket, prefix, dest):
    for key in listed_keys(s3, bucket, prefix):
        path = os.path.join(dest, key[len(prefix):])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, key, path, Config=transfer_config())


def presign_v2(s3, bucket):
    """boto3's generate_presigned_url for put_object and get_object, forced to SigV2
    (signature_version="s3") and with boto3's defaults (SigV2 in older botocore, SigV4 in
    newer), each fetched with plain urllib: the PUT stores the bytes, the GET returns them.
    A URL past its Expires, and one whose signature was altered, are refused with S3's codes."""
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    def fetch(url, data=None, method="GET", headers=None):
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    for label, extra in (("forced SigV2", {"signature_version": "s3"}), ("defaults", {})):
        signer = client(**extra)
        key = f"presigned-v2/{label} ключ + clé ✓&=.bin"
        data = os.urandom(50000)
        # SigV2 signs Content-Type, and urllib sends one with any body
        # (application/x-www-form-urlencoded unless told): the URL names the one to send.
        content_type = "application/octet-stream"
        put_url = signer.generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=300,
        )
        get_url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
        )
        v2 = "AWSAccessKeyId=" in get_url
        print(f"{label}: {'SigV2' if v2 else 'SigV4'} URLs: {get_url}")
        if extra and not v2:
            die(f"{label}: boto3 made no SigV2 URL: {get_url}")
        status, body = fetch(
            put_url, data=data, method="PUT", headers={"Content-Type": content_type}
        )
        if status != 200:
            die(f"{label}: presigned PUT -> {status}: {body[:500]!r}")
        status, body = fetch(get_url)
        if status != 200 or body != data:
            die(f"{label}: presigned GET -> {status}, {len(body)} bytes: {body[:500]!r}")
        # What the presigned PUT stored, as the SDK (SigV4) reads it.
        if s3.get_object(Bucket=bucket, Key=key)["Body"].read() != data:
            die(f"{label}: GetObject after the presigned PUT returned other bytes")
        s3.delete_object(Bucket=bucket, Key=key)
        if not v2:
            continue
        # An altered signature, and an expired URL.
        parts = urllib.parse.urlsplit(get_url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        bad = [(k, ("A" + v[1:] if v[0] != "A" else "B" + v[1:]) if k == "Signature" else v)
               for k, v in query]
        bad_url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(bad)))
        status, body = fetch(bad_url)
        if status != 403 or b"<Code>SignatureDoesNotMatch</Code>" not in body:
            die(f"{label}: altered signature -> {status}: {body[:500]!r}")
        expired = signer.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1
        )
        time.sleep(2.1)
        status, body = fetch(expired)
        if status != 403 or b"Request has expired" not in body:
            die(f"{label}: expired URL -> {status}: {body[:500]!r}")


def boto3_cycle(step, bucket, work):
    s3 = client()
    src = os.path.join(work, "tree")
    prefix = "tree/"
    if step == "create-bucket":
        s3.create_bucket(Bucket=bucket)
        s3.head_bucket(Bucket=bucket)
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        if bucket not in names:
            die(f"ListBuckets does not show {bucket}: {names}")
    elif step == "upload-tree":
        upload_tree(s3, bucket, src, prefix)
    elif step == "list":
        got = listed_keys(s3, bucket, prefix)
        expect_same_keys(got, src, prefix)
        sizes = {k: os.path.getsize(os.path.join(src, k[len(prefix):])) for k in got}
        for k, o in got.items():
            if o["Size"] != sizes[k]:
                die(f"listed size of {k!r} is {o['Size']}, file has {sizes[k]}")
        # delimiter listing: top-level "directories" of the tree
        r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        cps = sorted(p["Prefix"] for p in r.get("CommonPrefixes", []))
        want = sorted({prefix + d.split("/")[0] + "/" for d in TREE_DIRS if d} | {prefix + "big/"})
        if cps != want:
            die(f"CommonPrefixes {cps} != {want}")
        print(f"{len(got)} keys listed")
    elif step == "download-compare":
        dest = os.path.join(work, "download")
        download_tree(s3, bucket, prefix, dest)
        same(src, dest)
    elif step == "metadata":
        key = prefix + "docs/ünïcödé-ñame.bin"
        s3.put_object(
            Bucket=bucket,
            Key=key + ".meta",
            Body=b"hello metadata",
            ContentType="text/x-hansa",
            Metadata={"color": "blue", "owner": "hansa"},
        )
        h = s3.head_object(Bucket=bucket, Key=key + ".meta")
        if h["ContentType"] != "text/x-hansa" or h["Metadata"] != {
            "color": "blue",
            "owner": "hansa",
        }:
            die(f"metadata not returned: {h['ContentType']!r} {h['Metadata']!r}")
        r = s3.get_object(Bucket=bucket, Key=key + ".meta", Range="bytes=6-13")
        body = r["Body"].read()
        if body != b"metadata" or r["ResponseMetadata"]["HTTPStatusCode"] != 206:
            die(f"range get returned {r['ResponseMetadata']['HTTPStatusCode']} {body!r}")
        s3.delete_object(Bucket=bucket, Key=key + ".meta")
    elif step == "sync":
        # boto3 has no sync: do what a sync tool does, then check the result.
        before = files(src)
        mutate(src)
        after = files(src)
        for rel in sorted(after):
            if before.get(rel) != after[rel]:
                s3.upload_file(
                    os.path.join(src, rel), bucket, prefix + rel, Config=transfer_config()
                )
        gone = [{"Key": prefix + rel} for rel in sorted(set(before) - set(after))]
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": gone, "Quiet": False})
        if r.get("Errors") or len(r.get("Deleted", [])) != len(gone):
            die(f"DeleteObjects: {r.get('Errors')} deleted={r.get('Deleted')}")
        expect_same_keys(listed_keys(s3, bucket, prefix), src, prefix)
        dest = os.path.join(work, "download-after-sync")
        download_tree(s3, bucket, prefix, dest)
        same(src, dest)
    elif step == "copy":
        source_key = prefix + "photos/été/file with spaces.txt"
        target_key = "copies/copie été + espace.txt"
        s3.copy_object(
            Bucket=bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": source_key}
        )
        a = s3.get_object(Bucket=bucket, Key=source_key)["Body"].read()
        b = s3.get_object(Bucket=bucket, Key=target_key)["Body"].read()
        if a != b:
            die("copied object differs from its source")
        # managed copy (what boto3's s3.copy does for small objects: CopyObject)
        s3.copy(
            {"Bucket": bucket, "Key": prefix + BIG_NAME},
            bucket,
            "copies/big copy.bin",
            Config=transfer_config(),
        )
        big = s3.get_object(Bucket=bucket, Key="copies/big copy.bin")["Body"].read()
        with open(os.path.join(src, BIG_NAME), "rb") as f:
            if f.read() != big:
                die("managed copy of the big object differs")
    elif step == "presign":
        import urllib.request

        signer = client(signature_version="s3v4")
        key = "presigned/ключ + clé ✓.bin"
        data = os.urandom(70000)
        url = signer.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
        )
        req = urllib.request.Request(url, data=data, method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status != 200:
                die(f"presigned PUT: {r.status}")
        url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
        )
        with urllib.request.urlopen(url, timeout=30) as r:
            if r.read() != data:
                die("presigned GET returned other bytes")
        s3.delete_object(Bucket=bucket, Key=key)
    elif step == "presign-v2":
        presign_v2(s3, bucket)
    elif step == "whitespace-keys":
        # Leading/trailing whitespace is part of an S3 key, also inside DeleteObjects' XML.
        keys = [" lead", "trail ", "ws/  both  ", "ws/tab\t"]
        for k in keys:
            s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
        for k in keys:
            if s3.get_object(Bucket=bucket, Key=k)["Body"].read() != k.encode():
                die(f"GetObject {k!r} returned other bytes")
        listed = set(listed_keys(s3, bucket))
        if not set(keys) <= listed:
            die(f"not listed: {sorted(set(keys) - listed)}")
        r = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": False}
        )
        deleted = sorted(d["Key"] for d in r.get("Deleted", []))
        left = sorted(set(keys) & set(listed_keys(s3, bucket)))
        if deleted != sorted(keys) or left or r.get("Errors"):
            die(
                f"DeleteObjects of {keys!r}: answered Deleted={deleted!r} "
                f"Errors={r.get('Errors')!r}; still listed afterwards: {left!r}"
            )
    elif step == "delete":
        s3.delete_object(Bucket=bucket, Key="copies/copie été + espace.txt")
        try:
            s3.head_object(Bucket=bucket, Key="copies/copie été + espace.txt")
            die("object still there after DeleteObject")
        except s3.exceptions.ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
        # deleting the bucket while it holds objects must fail with BucketNotEmpty
        try:
            s3.delete_bucket(Bucket=bucket)
            die("DeleteBucket succeeded on a bucket that holds objects")
        except s3.exceptions.ClientError as e:
            if e.response["Error"]["Code"] != "BucketNotEmpty":
                raise
        keys = list(listed_keys(s3, bucket))
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            r = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            if r.get("Errors"):
                die(f"DeleteObjects errors: {r['Errors']}")
        left = listed_keys(s3, bucket)
        if left:
            die(f"objects left after DeleteObjects: {sorted(left)[:5]}")
    elif step == "remove-bucket":
        s3.delete_bucket(Bucket=bucket)
        try:
            s3.head_bucket(Bucket=bucket)
            die("bucket still there after DeleteBucket")
        except s3.exceptions.ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
                raise
    else:
        die(f"unknown boto3 step {step}")


def boto3_tls(step, bucket, work):
    """Over HTTPS boto3 sends PutObject as aws-chunked with an x-amz-checksum-crc32 trailer."""
    s3 = client(tls=True)
    key = "tls/ünïcödé file.bin"
    path = os.path.join(work, "tree", BIG_NAME)
    with open(path, "rb") as f:
        data = f.read()
    if step == "create-bucket":
        s3.create_bucket(Bucket=bucket)
    elif step == "put-trailer":
        seen = {}

        def capture(request, **_):
            seen["headers"] = dict(request.headers)

        s3.meta.events.register("before-send.s3.PutObject", capture)
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        h = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in seen["headers"].items()}
        # Make sure the case under test really is the one sent: a streaming trailer.
        if "aws-chunked" not in h.get("content-encoding", "") or "x-amz-trailer" not in h:
            die(
                "boto3 did not send an aws-chunked body with a trailer; headers: "
                + json.dumps({k: h[k] for k in h if k.startswith(("x-amz", "content"))})
            )
        print(
            f"sent content-encoding={h['content-encoding']} x-amz-trailer={h['x-amz-trailer']}"
            f" x-amz-content-sha256={h.get('x-amz-content-sha256')}"
        )
    elif step == "upload-file":
        s3.upload_file(path, bucket, key + ".2", Config=transfer_config())
    elif step == "get-compare":
        crc = base64.b64encode((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
        for k in (key, key + ".2"):
            r = s3.get_object(Bucket=bucket, Key=k, ChecksumMode="ENABLED")
            body = r["Body"].read()
            if body != data:
                die(f"{k!r}: downloaded bytes differ ({len(body)} vs {len(data)} bytes)")
            if r.get("ContentEncoding") and "aws-chunked" in r["ContentEncoding"]:
                die(f"{k!r}: stored Content-Encoding is {r['ContentEncoding']!r}")
            if r.get("ChecksumCRC32") != crc:
                die(f"{k!r}: ChecksumCRC32 {r.get('ChecksumCRC32')!r}, expected {crc!r}")
            if r["ContentLength"] != len(data):
                die(f"{k!r}: ContentLength {r['ContentLength']}")
        print(f"crc32 {crc} returned with ChecksumMode=ENABLED")
    elif step == "cleanup":
        for k in (key, key + ".2"):
            s3.delete_object(Bucket=bucket, Key=k)
        s3.delete_bucket(Bucket=bucket)
    else:
        die(f"unknown boto3-tls step {step}")


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "freeport":
        freeport()
    elif cmd == "waitport":
        waitport(*args)
    elif cmd == "mktree":
        print(mktree(args[0]))
    elif cmd == "mutate":
        mutate(args[0])
    elif cmd == "manifest":
        manifest(args[0])
    elif cmd == "same":
        same(args[0], args[1])
    elif cmd == "mpu-etag":
        mpu_etag(args[0], args[1])
    elif cmd == "selfsigned":
        selfsigned(args[0])
    elif cmd == "boto3-cycle":
        boto3_cycle(*args)
    elif cmd == "boto3-tls":
        boto3_tls(*args)
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
