#!/usr/bin/env python3
"""Write the SmolLM2 tokenizer golden file from llama.cpp itself.

    pip install llama-cpp-python gguf
    python3 tests/data/make_tokenizer_golden.py \
        --model /root/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --testdata ../shared/testdata/tokenizer \
        --out tests/data/smollm2_tokenizer_golden.json

tests/unit/test_tokenizer.cpp encodes every case with Tandem's tokenizer and
compares ids, decoded text and end-of-generation ids with what llama.cpp (via
llama-cpp-python's bindings, vocabulary only) produced here.  The file records
the llama-cpp-python version and this command.

Cases are text (UTF-8) or raw bytes given in hex, for inputs that are not
valid UTF-8.  Encoding is without BOS, with or without parse_special as the
case says.  "decoded_hex" is llama_detokenize(ids, remove_special=false,
unparse_special=true), i.e. what Tokenizer::decode(ids, true) must return.

With --testdata, each case also gets "gpt2_vocab_as": the ids llama.cpp gives
with llama.cpp's GPT-2 test vocabulary (ggml-vocab-gpt-2.gguf) relabelled
with other tokenizer.ggml.pre values, so the llama3, qwen2, default and
smollm pre-tokenizers are checked against llama.cpp wherever shared/testdata
exists, even without the SmolLM2 model.
"""
import argparse
import ctypes
import json
import os
import sys
import tempfile

import llama_cpp

RELABELLED_PRE = ["llama-bpe", "qwen2", "default", "smollm"]

# (text or bytes, parse_special)
CASES = [
    ("Hello world", False),
    (" Hello world", False),
    ("Hello, world! How are you?", False),
    ("   leading spaces", False),
    ("trailing spaces   ", False),
    ("multiple     spaces     inside", False),
    ("tabs\tand\ttabs\t\t", False),
    ("new\nlines\n\n\nand\r\nwindows\r\n", False),
    ("12345678", False),
    ("3.14159 and 1,000,000 and 0.5%", False),
    ("long digits 123456789012345678901234567890", False),
    ("x = 42; y = x ** 2", False),
    ("emoji \U0001F600\U0001F389\U0001F44D\U0001F3FD family \U0001F468\u200d\U0001F469\u200d\U0001F467", False),
    ("\U0001F680 (normal) \U0001F636\u200d\U0001F32B\ufe0f (multiple emojis) \u2705", False),
    ("CJK: \u4f60\u597d\uff0c\u4e16\u754c\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\ud55c\uad6d\uc5b4", False),
    ("Mixed\u4e2d\u6587and English\u6df7\u5408", False),
    ("accents: caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m fa\u00e7ade", False),
    ("\u00e9 composed vs e\u0301 decomposed", False),
    ("\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b5\u03af\u03bc\u03b5\u03bd\u03bf", False),
    ("\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442, \u0441 \u043f\u0443\u043d\u043a\u0442\u0443\u0430\u0446\u0438\u0435\u0439!", False),
    ("\u0639\u0631\u0628\u064a \u0646\u0635 \u0661\u0662\u0663", False),
    ("\u0939\u093f\u0928\u094d\u0926\u0940 \u092a\u093e\u0920", False),
    ("math: \u2211 x\u00b2 \u2264 \u221e, \u03b1+\u03b2=\u03b3, \u00bd \u00be", False),
    ("def foo(bar):\n    return bar * 2\n", False),
    ('#include <stdio.h>\nint main() { printf("hi\\n"); return 0; }\n', False),
    ("for i in range(10):\n\tprint(i)\n", False),
    ('JSON: {"key": [1, 2, 3], "nested": {"a": null}}', False),
    ("URL: https://example.com/path?q=1&r=2#frag email@example.com", False),
    ("It's, don't, we're, they've, I'm, you'll, he'd", False),
    ("IT'S DON'T WE'RE THEY'VE", False),
    ("'quoted' \"double\" `back` ''", False),
    ("Zero-width\u200bspace and NBSP\u00a0here\u3000ideographic", False),
    ("\ufb01 ligature and \uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28", False),
    ("   \n\n   \t  mixed whitespace   ", False),
    ("I'm 25 years old and I've got 3 cats.", False),
    ("", False),
    (" ", False),
    ("\n", False),
    ("a", False),
    ("<|im_start|>user\nhi<|im_end|>", True),
    ("<|im_start|>user\nhi<|im_end|>", False),
    ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n", True),
    ("<|endoftext|>", True),
    ("text<|endoftext|>more text", True),
    ("<|im_end|><|im_end|> <|im_start|>", True),
    ("mixed <|im_start|> in the middle", False),
    ("<reponame>repo<file_sep>file <filename>x.py", True),
    (b"abc\xffdef", False),
    (b"truncated \xe2\x82", False),
    (b"\xc0\x80 overlong and \xed\xa0\x80 surrogate", False),
]


def relabelled_gpt2_vocabs(testdata: str, tmp: str) -> dict:
    """Copies of the GPT-2 test vocabulary with another pre-tokenizer name."""
    import gguf  # only needed for this part

    reader = gguf.GGUFReader(os.path.join(testdata, "ggml-vocab-gpt-2.gguf"))

    def field(key):
        f = reader.fields[key]
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [int(f.parts[i][0]) for i in f.data]
        return int(f.parts[f.data[0]][0])

    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    merges = field("tokenizer.ggml.merges")
    paths = {}
    for pre in RELABELLED_PRE:
        path = os.path.join(tmp, f"gpt2-as-{pre}.gguf")
        w = gguf.GGUFWriter(path, "gpt2")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(field("tokenizer.ggml.bos_token_id"))
        w.add_eos_token_id(field("tokenizer.ggml.eos_token_id"))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        paths[pre] = path
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--testdata", help="folder with llama.cpp's ggml-vocab-gpt-2.gguf")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    relabelled = {}
    tmp = tempfile.TemporaryDirectory()
    if args.testdata:
        for pre, path in relabelled_gpt2_vocabs(args.testdata, tmp.name).items():
            relabelled[pre] = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)

    llm = llama_cpp.Llama(model_path=args.model, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    def detokenize(ids):
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        size = 64 + 64 * len(ids)
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, True)
        assert n >= 0, "detokenize buffer too small"
        return buf.raw[:n]

    cases = []
    for text, special in CASES:
        raw = text if isinstance(text, bytes) else text.encode("utf-8")
        ids = llm.tokenize(raw, add_bos=False, special=special)
        case = {"parse_special": special, "ids": ids, "decoded_hex": detokenize(ids).hex()}
        if isinstance(text, bytes):
            case["bytes_hex"] = raw.hex()
        else:
            case["text"] = text
        if relabelled:
            case["gpt2_vocab_as"] = {pre: other.tokenize(raw, add_bos=False, special=special)
                                     for pre, other in relabelled.items()}
        cases.append(case)

    golden = {
        "generator": "tests/data/make_tokenizer_golden.py",
        "command": " ".join(["python3"] + sys.argv),
        "llama_cpp_python_version": llama_cpp.__version__,
        "model": os.path.basename(args.model),
        "n_vocab": n_vocab,
        "eog_ids": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "cases": cases,
    }
    # One case per line keeps the file readable and its diffs small.
    head = {k: v for k, v in golden.items() if k != "cases"}
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k, v in head.items():
            f.write(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n")
        f.write(' "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n ]\n}\n")
    print(f"wrote {len(cases)} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
