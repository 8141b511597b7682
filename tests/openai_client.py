"""Drives ragbot's OpenAI-compatible endpoint with the official `openai` Python client.

Used by tests/it/openai_compat.rs: `python openai_client.py '<json>'` with
{"base_url", "key", "model", "messages", "stream"?, "extra_headers"?, "op"?: "chat"|"models"}.
Prints one JSON object: what the client saw (or the exception it raised).
"""

import json
import sys

import openai


def main() -> None:
    spec = json.loads(sys.argv[1])
    client = openai.OpenAI(base_url=spec["base_url"], api_key=spec["key"], max_retries=0)
    try:
        if spec.get("op") == "models":
            models = client.models.list()
            print(json.dumps({"ids": [m.id for m in models.data]}))
            return
        kwargs = {
            "model": spec["model"],
            "messages": spec["messages"],
            "extra_headers": spec.get("extra_headers") or None,
        }
        if not spec.get("stream"):
            c = client.chat.completions.create(**kwargs)
            print(json.dumps({
                "id": c.id,
                "object": c.object,
                "content": c.choices[0].message.content,
                "finish_reason": c.choices[0].finish_reason,
                "usage": c.usage.model_dump() if c.usage else None,
                # The extra fields OpenAI clients keep but do not model.
                "citations": (c.model_extra or {}).get("citations"),
                "ragbot": (c.model_extra or {}).get("ragbot"),
            }))
            return
        pieces, last = [], None
        for chunk in client.chat.completions.create(stream=True, **kwargs):
            if chunk.object != "chat.completion.chunk":
                raise SystemExit(f"unexpected object {chunk.object}")
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            last = chunk
        extra = (last.model_extra or {}) if last else {}
        print(json.dumps({
            "pieces": pieces,
            "content": "".join(pieces),
            "finish_reason": last.choices[0].finish_reason if last and last.choices else None,
            "usage": last.usage.model_dump() if last and last.usage else None,
            "citations": extra.get("citations"),
            "ragbot": extra.get("ragbot"),
        }))
    except openai.APIStatusError as e:
        print(json.dumps({
            "exception": type(e).__name__,
            "status": e.status_code,
            "body": e.body,
        }))
    except openai.APIError as e:
        print(json.dumps({"exception": type(e).__name__, "message": str(e)}))


if __name__ == "__main__":
    main()
