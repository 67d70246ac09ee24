// Progress through training epochs as pure arithmetic on a DataCursor, shared
// by the training streams (data/loader.h, data/synthetic_stream.h) and the
// training loop.
//
// Units:
//   epoch_size    n: the samples a training epoch draws from (the dataset
//                 size; BatchStream::epoch_size())
//   global_batch  G: samples per training step, all ranks together
//                 (batch size per rank x world size)
//   cursor        {epoch, sample}: `sample` is the position, in epoch
//                 `epoch`'s order, of the first sample of the next global
//                 batch (the same on every rank). Rank r of a step at cursor c
//                 takes positions [c.sample + r*B, c.sample + (r+1)*B), B the
//                 batch size per rank.
//
// A step advances the cursor by G; when fewer than G positions are left in
// the epoch (n - sample < G) the cursor moves to {epoch + 1, 0}, and those
// tail samples wait for a later epoch (each epoch has its own order).
// Because the cursor counts samples, not steps, a run can resume with a
// different G (world size or batch size) and continue the same epoch with
// no sample repeated or skipped; only the tail length depends on G.
//
// used = (n / G) * G is the samples a whole epoch uses at G: the unit of
// fractional epochs (epoch_position, train_steps_until).
#pragma once

#include <cstdint>

#include "data/batch_stream.h"

namespace rn::data {

// The cursor after one step at `c`: {c.epoch, c.sample + G}, or
// {c.epoch + 1, 0} when fewer than G samples would be left in the epoch.
DataCursor advance_train(DataCursor c, int64_t epoch_size, int64_t global_batch);

// Whether a step can start at `c`: epoch >= 0, sample >= 0 and
// sample + G <= n (a full global batch is left in the epoch).
bool valid_train_cursor(DataCursor c, int64_t epoch_size, int64_t global_batch);

// `c`, or {c.epoch + 1, 0} when c lies in epoch c.epoch (0 <= sample <= n)
// but fewer than G samples are left there (e.g. a cursor saved at a smaller
// G): where the next step starts. Other cursors are returned unchanged.
DataCursor normalize_train_cursor(DataCursor c, int64_t epoch_size, int64_t global_batch);

// Steps from `c` to the end of c's epoch: (n - c.sample) / G, at least 0.
int64_t train_batches_left(DataCursor c, int64_t epoch_size, int64_t global_batch);

// Steps from `c` until the fractional epoch position reaches `epochs`
// (epoch_position units): the whole epochs before floor(epochs) count
// train_batches_left each, and in epoch floor(epochs) the target position
// is frac * used samples, reached after max(0, ceil((frac * used - sample) / G))
// steps, or when the epoch ends, if sooner (possible when sample is not a
// multiple of G). From {0, 0} this is ceil(epochs * (n / G)) exactly. 0 when
// c is already there or past it.
int64_t train_steps_until(DataCursor c, double epochs, int64_t epoch_size, int64_t global_batch);

// The cursor as fractional epochs: c.epoch + c.sample / used.
double epoch_position(DataCursor c, int64_t epoch_size, int64_t global_batch);

}  // namespace rn::data
