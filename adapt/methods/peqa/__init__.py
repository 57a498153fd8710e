"""`method: peqa`: train only the NF4 quantization scales; the result is already the quantized model.

Kim et al. 2023 (PEQA) over bitsandbytes NF4: the 4-bit codes stay frozen and
each target layer learns log scales ``theta`` (``alpha = exp(theta)``, zeros are
exactly the base), one per output row (``channel``) or one per 64-value NF4
block (``block``).

Start reading at :mod:`.model` (build, set_active, finding and wrapping the
innermost linears), then:

- :mod:`.config`: ``PEQAConfig``, the recipe's ``method:`` section;
- :mod:`.layer`: ``PEQALinear`` and the NF4 block-scale arithmetic it shares with the export;
- :mod:`.io`: adapter files (``peft_type: PEQA``; one ``<path>.peqa_log_scale`` per layer);
- :mod:`.fold`: scales folded into the NF4 block scales, a standard bitsandbytes checkpoint;
- :mod:`.run`: the same over a run directory (``merge_into``, ``export_run``).

The package imports nothing on its own: the registry (:mod:`adapt.methods`) reads
:mod:`.config` without loading torch.
"""
