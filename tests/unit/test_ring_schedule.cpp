// The ring schedule on its own: N simulated ranks exchange chunks exactly as
// RingSchedule says (a message from r to r+1 is matched with what r+1 expects
// to receive), and every rank must end with the full sum.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "comm/dtype.h"
#include "comm/ring_schedule.h"

namespace rn::comm {
namespace {

// Values are distinct powers of two per rank (bit r set), so a chunk added
// twice or missed shows up in the bits of the result.
void simulate(int n, size_t count, size_t segment) {
  std::vector<std::vector<uint64_t>> buf(n, std::vector<uint64_t>(count));
  for (int r = 0; r < n; ++r)
    for (size_t i = 0; i < count; ++i) buf[r][i] = (uint64_t(1) << r) * (1 + i % 5);
  std::vector<RingSchedule> s;
  for (int r = 0; r < n; ++r) s.emplace_back(n, r, count, segment);

  for (int step = 0; step < 2 * (n - 1); ++step) {
    // All sends of a step happen "at once": snapshot what each rank sends.
    std::vector<std::vector<uint64_t>> sent(n);
    for (int r = 0; r < n; ++r) {
      const auto st = s[r].step(step);
      const Range c = s[r].chunk(st.send_chunk);
      sent[r].assign(buf[r].begin() + c.begin, buf[r].begin() + c.end);
    }
    for (int r = 0; r < n; ++r) {
      const auto st = s[r].step(step);
      const int from = s[r].left();
      // The chunk r receives is the chunk its left neighbour sends.
      ASSERT_EQ(st.recv_chunk, s[from].step(step).send_chunk) << "n=" << n << " step " << step;
      const Range c = s[r].chunk(st.recv_chunk);
      ASSERT_EQ(c.size(), sent[from].size());
      // Segments tile the chunk.
      size_t covered = 0;
      for (size_t k = 0; k < s[r].segments(st.recv_chunk); ++k) covered += s[r].segment(st.recv_chunk, k).size();
      ASSERT_EQ(covered, c.size());
      for (size_t i = 0; i < c.size(); ++i) {
        if (st.phase == RingSchedule::Phase::kReduceScatter) buf[r][c.begin + i] += sent[from][i];
        else buf[r][c.begin + i] = sent[from][i];
      }
    }
    if (step == n - 2) {  // end of reduce-scatter: the owned chunk is complete
      const uint64_t all = (uint64_t(1) << n) - 1;
      for (int r = 0; r < n; ++r) {
        const Range c = s[r].chunk(s[r].owned_chunk());
        for (size_t i = c.begin; i < c.end; ++i) ASSERT_EQ(buf[r][i], all * (1 + i % 5)) << "rank " << r;
      }
    }
  }
  const uint64_t all = (uint64_t(1) << n) - 1;
  for (int r = 0; r < n; ++r)
    for (size_t i = 0; i < count; ++i) ASSERT_EQ(buf[r][i], all * (1 + i % 5)) << "n=" << n << " rank " << r << " i " << i;
}

TEST(RingSchedule, EveryRankEndsWithTheFullSum) {
  for (int n : {1, 2, 3, 4, 5, 7, 8, 16})
    for (size_t count : {size_t(0), size_t(1), size_t(n - 1 > 0 ? n - 1 : 1), size_t(n), size_t(1000003 % 997),
                         size_t(4099)})
      for (size_t seg : {size_t(1), size_t(3), size_t(64), size_t(1) << 20}) simulate(n, count, seg);
}

TEST(RingSchedule, ChunksPartitionTheBufferAndDifferByAtMostOne) {
  for (int n : {1, 3, 8})
    for (size_t count : {size_t(0), size_t(2), size_t(17), size_t(1024)}) {
      RingSchedule s(n, 0, count, 4);
      size_t next = 0, lo = count, hi = 0;
      for (int c = 0; c < n; ++c) {
        EXPECT_EQ(s.chunk(c).begin, next);
        next = s.chunk(c).end;
        lo = std::min(lo, s.chunk(c).size());
        hi = std::max(hi, s.chunk(c).size());
      }
      EXPECT_EQ(next, count);
      EXPECT_LE(hi - lo, 1u);
      EXPECT_EQ(s.max_chunk(), hi);
    }
}

TEST(RingSchedule, EachRankSendsTwoNMinusOneChunks) {
  const int n = 5;
  RingSchedule s(n, 2, 100, 7);
  EXPECT_EQ(s.phase_steps(), n - 1);
  EXPECT_EQ(s.right(), 3);
  EXPECT_EQ(s.left(), 1);
  EXPECT_EQ(s.owned_chunk(), 3);
  EXPECT_EQ(s.step(0).send_chunk, 2);
  EXPECT_EQ(s.step(0).recv_chunk, 1);
  EXPECT_EQ(s.step(n - 1).send_chunk, 3);  // all-gather starts with the owned chunk
  EXPECT_EQ(s.step(n - 1).phase, RingSchedule::Phase::kAllGather);
}

TEST(WireDtypes, ConversionsRoundToNearestEven) {
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f)), 1.0f);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_EQ(fp16_to_float(float_to_fp16(65504.f)), 65504.f);
  EXPECT_EQ(fp16_to_float(float_to_fp16(1.0f + 1.0f / 2048)), 1.0f);
  uint16_t a[2] = {float_to_bf16(2.5f), float_to_bf16(-1.f)}, b[2] = {float_to_bf16(0.5f), float_to_bf16(-7.f)};
  reduce_add(DType::kBF16, a, b, 2);
  EXPECT_EQ(bf16_to_float(a[0]), 3.f);
  EXPECT_EQ(bf16_to_float(a[1]), -8.f);
  divide(DType::kBF16, a, 2, 2.f);
  EXPECT_EQ(bf16_to_float(a[1]), -4.f);
}

}  // namespace
}  // namespace rn::comm
