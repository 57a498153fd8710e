"""Training plumbing under the train stage (no module here imports a stage).

- ``trainer.py``: the Trainer/SFTTrainer arguments every task kind trains with, the run's metrics, trainable counts;
- ``validation.py``: scoring the validation split every N steps, the best checkpoint, early stopping;
- ``checkpoints.py``: complete checkpoints only, the newest one to resume from;
- ``balance.py``: label skew (class-weighted loss, balanced sampling);
- ``supervised_head.py``: the LM head over supervised positions only (fast CPU training with big vocabularies);
- ``distributed.py`` / ``launch.py``: several processes (accelerate), and starting them.
"""
