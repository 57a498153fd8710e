"""Quantized deliverables: bitsandbytes NF4/int8, GGUF files and GGUF LoRA adapters for llama.cpp.

The stage function lives in :mod:`adapt.quantize`; the modules here are the library it (and eval) use:

- :mod:`adapt.export.formats`: the one format table (name, writer, loader, bits, extra), start here;
- :mod:`adapt.export.write`: ``export()`` runs a format's writer into export/<format>/ with its manifest;
- :mod:`adapt.export.load`: ``load_export()`` runs a format's loader (what eval scores);
- :mod:`adapt.export.gguf_files`: what an existing GGUF says about itself (arch, tensor types);
- :mod:`adapt.export.bnb`: NF4 (+ double quant) and LLM.int8 checkpoints;
- :mod:`adapt.export.gguf_arch`: llama.cpp metadata, tensor names and layouts (Llama, Gemma 3);
- :mod:`adapt.export.gguf_tokenizer`: the tokenizer and chat template as GGUF metadata;
- :mod:`adapt.export.gguf_writer`: streaming GGUF writer (F16, Q8_0, Q4_0);
- :mod:`adapt.export.gguf_lora`: peft LoRA <-> GGUF LoRA adapter;
- :mod:`adapt.export.llamacpp`: optional llama-cpp-python helpers (K-quants, loading, generation).

Heavy libraries are imported inside the functions that need them.
"""
