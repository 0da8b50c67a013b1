"""Training helpers behind ``grasp-equi train`` / ``evaluate``: metrics, cached graph batches,
the training loop with resumable state, family splits, and publishing weights with a model card."""
