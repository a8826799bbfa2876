"""What an evaluator's source becomes: a deployed reward function or a stored prompt.

Registration checks everything here before the hub hears of it: a reward function's
code must parse and define ``lambda_handler`` (then it is zipped as
``lambda_function.py`` and deployed to a function of its own, one per version), a
prompt must be a valid template. Nothing in this module knows about hub documents.
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
import uuid
import zipfile
from pathlib import Path

from botocore.exceptions import ClientError

from airegistry.session import Session
from airegistry.storage.blobs.errors import NoSuchBucket, NoSuchKey

MAX_PROMPT_CHARS = 100_000
MAX_CODE_BYTES = 10 * 1024 * 1024
LAMBDA_ARN_PREFIX = "arn:aws:lambda:"


def _function_name(evaluator: str) -> str:
    """A Lambda function name (<= 64 chars) unique to one evaluator version."""
    return f"air-{evaluator[:46]}-{uuid.uuid4().hex[:12]}"


def check_reward_function_source(code: str, origin: str) -> None:
    """Refuse code that cannot be a Lambda handler before anything is deployed."""
    try:
        tree = ast.parse(code, filename=origin)
    except SyntaxError as exc:
        raise ValueError(
            f"Reward function {origin} has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "lambda_handler":
            if isinstance(node, ast.AsyncFunctionDef):
                raise ValueError(f"Reward function {origin}: lambda_handler must not be async")
            return
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.ImportFrom):
            targets: list[str] = []
            if isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            elif isinstance(node, ast.ImportFrom):
                targets = [a.asname or a.name for a in node.names]
            if "lambda_handler" in targets:
                return
    raise ValueError(
        f"Reward function {origin} defines no lambda_handler(event, context) at module level"
    )


def package_reward_function(code: str) -> bytes:
    """A deployment zip with the code as ``lambda_function.py``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("lambda_function.py", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, code)
    return buffer.getvalue()


def read_s3_text(session: Session, uri: str, limit: int) -> str:
    from airegistry.dataset import parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    try:
        with contextlib.closing(session.objects.open(bucket, key)) as stream:
            data = stream.read(limit + 1)
    except ClientError as exc:
        raise ValueError(f"Cannot read evaluator source {uri}: {exc}") from None
    except (NoSuchKey, NoSuchBucket):
        raise ValueError(f"Evaluator source {uri} does not exist") from None
    if len(data) > limit:
        raise ValueError(f"Evaluator source {uri} is larger than {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"Evaluator source {uri} is not UTF-8 text") from None




def deploy_reward_function(
    session: Session, name: str, source: str, role: str | None, timeout: int, memory_mb: int
) -> tuple[bool, str, str | None]:
    """Resolve a reward function source: ``(byoc, reference, created function name or None)``.

    A Lambda ARN is referenced as it is; a local or S3 ``.py`` file is checked, packaged
    and deployed to a function of its own (the caller deletes it if registration fails).
    """
    from airegistry.runtime.function_inputs import FUNCTION_ARN_RE

    if source.startswith(LAMBDA_ARN_PREFIX):
        if not FUNCTION_ARN_RE.match(source):
            raise ValueError(
                f"Invalid Lambda ARN {source!r}: expected "
                "arn:aws:lambda:<region>:<12-digit account>:function:<name>"
            )
        return False, source, None
    if source.startswith("s3://"):
        if not source.endswith(".py"):
            raise ValueError(f"A reward function in S3 must be a .py file: {source}")
        code = read_s3_text(session, source, MAX_CODE_BYTES)
    else:
        path = Path(source).expanduser()
        if path.suffix != ".py":
            raise ValueError(
                f"A reward function source must be a Lambda ARN, a local .py file or an "
                f"s3://.../file.py object, not {source!r}"
            )
        if not path.is_file():
            raise ValueError(f"Reward function file not found: {path}")
        if path.stat().st_size > MAX_CODE_BYTES:
            raise ValueError(f"Reward function file {path} is larger than {MAX_CODE_BYTES:,} bytes")
        try:
            code = path.read_text("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"Reward function file {path} is not UTF-8 text") from None
    check_reward_function_source(code, source)
    function_name = _function_name(name)
    response = session.functions.create_function(
        FunctionName=function_name,
        Runtime=f"python3.{min(max(sys.version_info.minor, 10), 13)}",
        Role=role or f"arn:aws:iam::{session.account_id}:role/airegistry-evaluator",
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": package_reward_function(code)},
        Timeout=timeout,
        MemorySize=memory_mb,
        Description=f"airegistry reward function {name}"[:256],
    )
    return True, response["FunctionArn"], function_name

def store_prompt(session: Session, name: str, source: str) -> str:
    """Check a reward prompt (inline text, a file or S3) and store it; its ``s3://`` URI."""
    from airegistry.runtime.templates import PromptTemplate

    if source.startswith("s3://"):
        text = read_s3_text(session, source, MAX_PROMPT_CHARS * 4)
    elif "\n" not in source and len(source) < 4096 and Path(source).expanduser().is_file():
        try:
            text = Path(source).expanduser().read_text("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"Reward prompt file {source} is not UTF-8 text") from None
    else:
        text = source
    if not text.strip():
        raise ValueError("A reward prompt cannot be empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"A reward prompt can be at most {MAX_PROMPT_CHARS:,} characters")
    PromptTemplate(text)  # raises TemplateError (a ValueError) naming the position
    bucket = session.default_bucket
    session.objects.ensure_bucket(bucket)
    key = f"evaluators/{name}/{uuid.uuid4().hex}/prompt.txt"
    session.objects.put_bytes(bucket, key, text.encode("utf-8"), content_type="text/plain")
    return f"s3://{bucket}/{key}"

def discard_created(session: Session, function: str | None, object_uri: str | None) -> None:
    """Undo what a failed registration created (its function, its stored prompt)."""
    if function:
        with contextlib.suppress(Exception):
            session.functions.delete_function(FunctionName=function)
    if object_uri:
        from airegistry.dataset import parse_s3_uri

        with contextlib.suppress(Exception):
            session.objects.delete(*parse_s3_uri(object_uri))
