// <qkv/qkv.h>: the whole public API of qkv in one include. Each layer's headers can also be
// included on their own, as <qkv/core/tensor.h> or "core/tensor.h" (docs/library.md).
//
// Layers (each a library and a CMake target, qkv::<layer>; qkv::qkv links them all):
//   core      Tensor<T>, shapes, the seeded Rng, errors, the HDF5 wrapper, Batch
//   autograd  Var<T>, backward(), every differentiable op, gradcheck
//   nn        Module<T> with named parameters, the layers, ModelConfig and Model<T>
//   datasets  vocabularies, Task (the extension point) and its probes, the toy tasks, batch files
//   plot      SVG line charts and heatmaps
//   train     optimizers, LR schedules, clipping, checkpoints, metrics, evaluation, decoding,
//             loading a trained checkpoint, the training loop
#pragma once

#include "core/arch.h"
#include "core/attention_map.h"
#include "core/atomic_file.h"
#include "core/batch.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/index_tensor.h"
#include "core/json_reader.h"
#include "core/rng.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "core/version.h"

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/var.h"

#include "nn/batch_model.h"
#include "nn/config.h"
#include "nn/kv_cache.h"
#include "nn/layers.h"
#include "nn/model.h"
#include "nn/model_gradcheck.h"
#include "nn/module.h"
#include "nn/random_batch.h"

#include "datasets/batch_io.h"
#include "datasets/probe.h"
#include "datasets/task.h"
#include "datasets/vocab.h"

#include "plot/plot.h"

#include "train/charts.h"
#include "train/checkpoint.h"
#include "train/clip.h"
#include "train/data_parallel.h"
#include "train/decode.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/load.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/thread_shards.h"
#include "train/trainer.h"
