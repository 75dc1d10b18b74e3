"""The tutorial's numpy example (its section 3), run through qkv.

The tutorial matches the query [0,1,0,0] against three 4-d words, "The"
[1,0,1,0], "cat" [0,1,0,1] and "sat" [1,1,0,0], which are also the values,
unscaled, in three steps: scores Q.K^T, softmax, weighted sum. Its printed
"expected output" ([0.21194156 0.39402922 0.39402922], context
[0.60597078 0.78805844 0.21194156 0.39402922]) is not what its own code
computes; this prints what the code computes, through qkv's kernels, and
then the tutorial's exercise (self-attention with "The" as the query).

Run: PYTHONPATH=python python3 examples/seed.py (or with qkv installed).
"""
import numpy as np

import qkv

np.set_printoptions(precision=6)

input_embeddings = np.array([
    [1, 0, 1, 0],   # "The"
    [0, 1, 0, 1],   # "cat"
    [1, 1, 0, 0],   # "sat"
])
Keys = input_embeddings
Values = input_embeddings
Query = np.array([0, 1, 0, 0])

# Step 1: scores Q . K^T, unscaled as in the tutorial (scale=1.0)
scores = qkv.scores(Query[None, :], Keys, scale=1.0)[0]
print(f"Keys/Values:\n{Keys}\n")
print(f"Query:\n{Query}\n")
print(f"1. scores (Q . K^T):\n{scores}\n")

# Step 2: softmax over the scores: the attention weights
attention_weights = qkv.softmax(scores[None, :])[0]
print(f"2. attention weights (softmax):\n{attention_weights}\n")

# Step 3: the weighted sum of the values: the context vector
context_vector = qkv.weighted_sum(attention_weights[None, :], Values)[0]
print(f"3. context vector (weights . V):\n{context_vector}\n")

# The same in one fused call.
fused = qkv.attention(Query[None, :], Keys, Values, scale=1.0)[0]
print(f"fused qkv.attention:\n{fused}\n")

# The exercise: "The" [1,0,1,0] as the query (self-attention).
the = qkv.attention(input_embeddings[0][None, :], Keys, Values, scale=1.0)[0]
print(f'exercise, "The" as the query:\n{the}\n')

# The numbers the tutorial's code computes: weights [1, e, e] / (1 + 2e).
e = np.e
want_weights = np.array([1, e, e]) / (1 + 2 * e)
want_context = want_weights @ Values
want_the = np.array([e**2, 1, e]) / (e**2 + 1 + e) @ Values
assert np.allclose(scores, [0, 1, 1], atol=0)
assert np.allclose(attention_weights, want_weights, rtol=0, atol=1e-6)
assert np.allclose(context_vector, want_context, rtol=0, atol=1e-6)
assert np.allclose(fused, want_context, rtol=0, atol=1e-6)
assert np.allclose(the, [0.909969, 0.334759, 0.665241, 0.090031], rtol=0, atol=1e-6)
print("ok: the numbers the tutorial's code computes (ISA %s)" % qkv.isa())
