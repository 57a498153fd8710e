"""`method: moe_lora`: a mixture of LoRA experts with a learned router, on an NF4 or 16-bit base.

Each MLP projection in ``cfg.expert_modules`` gets E routed LoRA experts, each
projection in ``cfg.attention_modules`` a plain LoRA. The layers wrap the
innermost base linear, so MoE-LoRA adapters share one base with peft LoRA
adapters and with each other.

Start reading at :mod:`.model` (build, set_active, auxiliary_loss, telemetry on a
model), then:

- :mod:`.config`: ``MoELoRAConfig``, the recipe's ``method:`` section;
- :mod:`.routing`: top-k gates and the load-balancing loss;
- :mod:`.layer`: ``MoELoRALinear`` (experts + router around one base linear);
- :mod:`.state`: ``MoEState``, what the layers of one model share;
- :mod:`.io`: adapter files (save, load);
- :mod:`.telemetry`: per-expert utilization, ``routing.json`` / ``routing.png``;
- :mod:`.collapse`: one plain peft LoRA from the mean gates over calibration data;
- :mod:`.run`: the same over a run directory (``lora_for_merge``, ``routing_report``).

The package imports nothing on its own: the registry (:mod:`adapt.methods`) reads
:mod:`.config` without loading torch.
"""
