"""The official OpenAI Python SDK (Chat Completions) against a base URL.

usage: openai_sdk.py BASE_URL PROMPT [--stream]

BASE_URL is the server's root; the SDK is given BASE_URL/v1. Prints one JSON line:
{"ok": true, "text": ..., "pieces": [...], "finish_reason": ...} for a reply, or
{"ok": false, "error": "BadRequestError", "status": 400, "message": ...} for a 400.
Any other failure is a traceback and a non-zero exit.
"""

import json
import sys

import openai


def main() -> None:
    base_url, prompt = sys.argv[1], sys.argv[2]
    stream = sys.argv[3:] == ["--stream"]
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-client", max_retries=0, timeout=30)
    request = {"model": "qwen2.5-coder", "messages": [{"role": "user", "content": prompt}]}
    try:
        if stream:
            pieces, finish_reason = [], None
            chunks = client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
            for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta.content:
                        pieces.append(choice.delta.content)
                    finish_reason = choice.finish_reason or finish_reason
        else:
            completion = client.chat.completions.create(**request)
            pieces = [completion.choices[0].message.content]
            finish_reason = completion.choices[0].finish_reason
        result = {"ok": True, "text": "".join(pieces), "pieces": pieces, "finish_reason": finish_reason}
    except openai.BadRequestError as e:
        result = {"ok": False, "error": type(e).__name__, "status": e.status_code, "message": str(e)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
