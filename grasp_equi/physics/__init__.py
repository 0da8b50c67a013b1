"""Physics check of grasp stability labels and predictions: MuJoCo close/lift/shake trials.

``GraspSimulator(mesh, mass).trial(contacts)`` runs one parallel-jaw grasp; ``grasp-equi
validate-physics`` (``validate.py``) compares labels and model scores with many trials.
MuJoCo is imported only by the simulators (``hand.py``: their shared base, ``trial.py``: the jaws,
``fingertips.py``: the K-fingertip hand), so the rest of grasp_equi never needs it.
"""
