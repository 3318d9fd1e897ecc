"""DLRM ranking model: module, training, evaluation, artifact, batch scorer."""
