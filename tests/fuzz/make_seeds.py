#!/usr/bin/env python3
"""Writes the seed corpora of the tokenizer, chat-template, request and
shm-ring fuzzers into tests/fuzz/corpus/<target>/ (committed; a few KiB).

Every seed is made here from our own text or from the documented layouts, so
the corpora can be re-made and reviewed:
  tokenizer      flag bytes + text in several scripts, digits, whitespace runs,
                 control-token spellings
  chat_template  template sources with each family's markers (SmolLM2's own
                 ChatML template with its default system prompt among them),
                 names, and conversations, fields separated by 0x1e
  requests       real GenerateRequest / ChatRequest / DetokenizeRequest wire
                 bytes, encoded by protoc from text format
  shm_ring       ring segments laid out as core/shm_ring.cpp documents, with a
                 hidden-rows, logits or error message (core/batch_wire.h) in slot 0

Run: python3 tests/fuzz/make_seeds.py   (needs protoc)
"""
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


TEXTS = [
    "Hello world",
    " Hello  world\n\n  tabs\there",
    "The year 2024 had 366 days; 3.14159 and 1,000,000.",
    "Grüße aus Köln — ça va? ñandú",
    "日本語のテキストと中文字符",
    "Привет, мир! Ελληνικά",
    "emoji 🙂🚀 and combining e\u0301",
    "<|im_start|>user\nHi<|im_end|>\n<s>[INST] x [/INST]</s>",
    "def f(x):\n    return x ** 2  # comment\n",
    "I'm, you're, they've... don't .  ,  !",
    "\u00a0\u2003nbsp and em space",
]

# Flag byte: 1 add BOS, 2 parse special tokens, 4 render special tokens.
def tokenizer_seeds():
    for i, t in enumerate(TEXTS):
        for vocab in range(4):
            flags = (i + vocab) % 8
            write("tokenizer", f"text{i:02d}_v{vocab}", bytes([vocab, flags]) + t.encode())


SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TEMPLATES = [
    SMOLLM2_TEMPLATE,
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}",
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}",
    "{{ bos_token + '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content + ' [/INST]' }}",
    "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
    "{{ '<|im_start|>' + role + '<|im_sep|>' + content + '<|im_end|>' }}",
    "",
]
RS = b"\x1e"


def chat_seeds():
    convs = [
        [b"\x01Hello"],
        [b"\x00Be brief.", b"\x01What is 2+2?", b"\x024", b"\x01And 3+3?"],
        [b"\x01  padded content \n"],
        [b"\x03tool output"],
        [],
    ]
    names = [b"", b"chatml", b"llama3", b"llama2", b"mistral", b"vicuna"]
    n = 0
    for ti, t in enumerate(TEMPLATES):
        for ci, c in enumerate(convs):
            name = names[(ti + ci) % len(names)]
            bos = b"<s>" if (ti + ci) % 2 else b""
            write("chat_template", f"seed{n:02d}", RS.join([t.encode(), name, bos] + c))
            n += 1


REQUESTS = [
    (0, 0, "GenerateRequest", 'prompt: "The capital of France is" options { max_tokens: 8 sampling { temperature: 0 } }'),
    (0, 1, "GenerateRequest", 'prompt: "<|im_start|>user\\nHi<|im_end|>" special: true no_bos: true '
                              'options { max_tokens: -1 stop: "\\n" stop: "." logprobs: 5 ignore_eos: true }'),
    (0, 2, "GenerateRequest", 'prompt: "x" options { max_tokens: 100000 sampling { top_k: 40 top_p: 0.9 min_p: 0.05 '
                              'repeat_penalty: 1.1 repeat_last_n: 64 frequency_penalty: 0.5 presence_penalty: 0.5 seed: 7 } }'),
    (0, 3, "GenerateRequest", 'prompt: "" options { logprobs: 21 stop: "" }'),
    (1, 0, "ChatRequest", 'messages { role: "user" content: "Hello" } options { max_tokens: 16 }'),
    (1, 1, "ChatRequest", 'messages { role: "system" content: "Be brief." } messages { role: "user" content: "Why?" } '
                          'messages { role: "assistant" content: "Because." } chat_template: "llama3"'),
    (1, 2, "ChatRequest", 'messages { role: "tool" content: "x" } chat_template: "vicuna"'),
    (1, 3, "ChatRequest", 'messages { role: "user" content: "long" } options { sampling { temperature: -1 top_p: 2 } }'),
    (2, 0, "DetokenizeRequest", "ids: 1 ids: 2 ids: 3 ids: 49151 special: true"),
    (2, 1, "DetokenizeRequest", "ids: -1 ids: 1000000"),
]


def request_seeds():
    proto = os.path.join(ROOT, "proto")
    for i, (kind, limits, msg, text) in enumerate(REQUESTS):
        wire = subprocess.run(["protoc", f"--proto_path={proto}", f"--encode=tandem.v1.{msg}", "tandem/v1/inference.proto"],
                              input=text.encode(), capture_output=True, check=True).stdout
        write("requests", f"req{i:02d}_{msg}", bytes([kind, limits]) + wire)


# core/shm_ring.cpp: Header (256 bytes: magic u64, version u32, slots u32,
# stride u64, capacity u64 | head u32 @64 | tail u32 @128 | beat_ns[2] u64 @192),
# then `slots` slots of `stride` bytes: {seq u64, bytes u64} + payload.
def ring(slots, capacity, messages, head=None, tail=0):
    stride = (capacity + 16 + 63) // 64 * 64
    hdr = bytearray(256)
    struct.pack_into("<QIIQQ", hdr, 0, 0x54444D52494E4731, 1, slots, stride, capacity)
    struct.pack_into("<I", hdr, 64, len(messages) if head is None else head)
    struct.pack_into("<I", hdr, 128, tail)
    body = bytearray(slots * stride)
    for i, m in enumerate(messages):
        struct.pack_into("<QQ", body, i * stride, i, len(m))
        body[i * stride + 16:i * stride + 16 + len(m)] = m
    return bytes(hdr + body)


# core/batch_wire.h: BatchHeader (48 bytes: magic u32 "TABT", kind u32,
# generation u64, batch_id u64, n_rows u32, row_width u32, dtype u32,
# text_bytes u32, reserved u64), then RowMeta[n_rows] {seq, pos, flags, token}
# and the rows (f32 or f16), or the error text.
def batch(kind, rows, width, dtype=0, text=b""):
    h = struct.pack("<IIQQIIIIQ", 0x54424154, kind, 1, 7, rows, width, dtype, len(text), 0)
    meta = b"".join(struct.pack("<iiIi", 0, p, 1, 100 + p) for p in range(rows))
    esize = {0: 4, 1: 2}[dtype]
    payload = text if text else bytes(rows * width * esize)
    return h + (b"" if text else meta) + payload


def ring_seeds():
    kinds = {"hidden": 1, "logits": 2, "error": 3}
    write("shm_ring", "empty", ring(2, 256, []))
    write("shm_ring", "hidden_f32", ring(2, 512, [batch(kinds["hidden"], 2, 16)]))
    write("shm_ring", "hidden_f16", ring(2, 512, [batch(kinds["hidden"], 3, 16, dtype=1)]))
    write("shm_ring", "logits", ring(2, 512, [batch(kinds["logits"], 1, 32)]))
    write("shm_ring", "error", ring(2, 256, [batch(kinds["error"], 0, 0, text=b"tandem-cpu-worker: out of memory")]))
    write("shm_ring", "full", ring(2, 256, [batch(kinds["hidden"], 1, 8), batch(kinds["hidden"], 1, 8)]))


if __name__ == "__main__":
    tokenizer_seeds()
    chat_seeds()
    request_seeds()
    ring_seeds()
    print("seeds written under", OUT, file=sys.stderr)
