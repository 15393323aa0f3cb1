"""The library behind the four scripts, one module per concept.

- ``sources``: IMDB from the hub, a parquet folder or an aclImdb folder, or your own texts (CSV, JSON
  Lines, parquet, a hub id) with any number of classes; IMDB's unlabeled reviews.
- ``data``: subsets, the held-out validation set, a run's partition of the data, encoded rows.
- ``text``: the WordPiece tokenizer, encoding, length-bucketed batches, padding.
- ``vectors``: word vectors from unlabeled text, to start the token embeddings from.
- ``fit``: the model factory, the one training loop, prediction and accuracy.
- ``distill``: the distillation loss, distilling one teacher or an ensemble.
- ``strategies``: uncertainty scores, the seed set and the query.
- ``active``: the active-learning loop and the ensemble step after it.
- ``resume``: where each run's state is saved, and whether a saved state may be resumed.
- ``oracle``: a person in the loop: each round's queries as a CSV and Label Studio tasks, the answers
  read back and checked.
- ``curves``: learning curves over seeds, label savings against random, the plot.
- ``bar``: the TF-IDF n-gram logistic regression (scikit-learn), the bar the Transformers are held to.
- ``export``: ONNX copies of a model (fp32 and int8) for ONNX Runtime.
- ``serve``: raw text in, labels out, by torch, ONNX Runtime or the bar: the path the timing measures.
- ``store``: checkpoint folders, JSON, ``results.txt``, the ``al_history.json`` schema.
- ``timing``: the benchmark both timing scripts run.
- ``runtime``: seeds, devices, autocast and progress bars.
- ``distributed``: the process's rank under ``torchrun``, and work sharded over the ranks.

Nothing here reads ``argparse`` namespaces: the scripts turn their options into the settings
dataclasses each module defines.
"""


class UserError(Exception):
    """A problem the user can fix (bad path, option, missing checkpoint): one line, exit code 2."""
