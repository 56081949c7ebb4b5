"""The official Anthropic Python SDK against a base URL.

usage: anthropic_sdk.py BASE_URL PROMPT [--stream]

Prints one JSON line: {"ok": true, "text": ..., "pieces": [...], "stop_reason": ...} for a
reply, or {"ok": false, "error": "BadRequestError", "status": 400, "message": ...} for a 400.
Any other failure is a traceback and a non-zero exit.
"""

import json
import sys

import anthropic


def main() -> None:
    base_url, prompt = sys.argv[1], sys.argv[2]
    stream = sys.argv[3:] == ["--stream"]
    client = anthropic.Anthropic(base_url=base_url, api_key="sk-client", max_retries=0, timeout=30)
    request = {
        "model": "claude-opus-4-6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}],
    }
    try:
        if stream:
            with client.messages.stream(**request) as events:
                pieces = list(events.text_stream)
                final = events.get_final_message()
        else:
            final = client.messages.create(**request)
            pieces = [block.text for block in final.content if block.type == "text"]
        result = {"ok": True, "text": "".join(pieces), "pieces": pieces, "stop_reason": final.stop_reason}
    except anthropic.BadRequestError as e:
        result = {"ok": False, "error": type(e).__name__, "status": e.status_code, "message": str(e)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
