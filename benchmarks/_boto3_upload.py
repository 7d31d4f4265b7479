"""The baseline of ``benchmarks/push.py --storage s3``: boto3's own ``upload_file`` of some files.

    python benchmarks/_boto3_upload.py --endpoint URL --bucket NAME --prefix P/ \\
        [--threads N] [--part-mib M] [--threshold-mib T] FILE...

Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION. The files go
one after the other, each with one ``upload_file`` call (which sends a large file's parts on the
TransferConfig's threads), as ``text/csv`` under PREFIX + file name, as dphub stores them. Without
the three options the TransferConfig is boto3's default (8 MiB threshold and parts, 10 threads).

Prints one line of JSON: the seconds the uploads took, after the import and the client set-up.
The caller times the whole process as well, as it times ``dphub push``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MIB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--threads", type=int, default=None, help="TransferConfig max_concurrency")
    parser.add_argument("--part-mib", type=int, default=None, help="multipart_chunksize in MiB")
    parser.add_argument("--threshold-mib", type=int, default=None, help="multipart_threshold")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()

    options = {}
    if args.threads is not None:
        options["max_concurrency"] = args.threads
    if args.part_mib is not None:
        options["multipart_chunksize"] = args.part_mib * MIB
    if args.threshold_mib is not None:
        options["multipart_threshold"] = args.threshold_mib * MIB
    transfer = TransferConfig(**options)
    # As the hub's own client for a store with an endpoint: SigV4, path-style addressing.
    client = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    started = time.perf_counter()
    for path in args.files:
        client.upload_file(
            str(path),
            args.bucket,
            args.prefix + path.name,
            ExtraArgs={"ContentType": "text/csv"},
            Config=transfer,
        )
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "transfer_seconds": seconds,
                "threshold": transfer.multipart_threshold,
                "part_size": transfer.multipart_chunksize,
                "threads": transfer.max_request_concurrency,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
