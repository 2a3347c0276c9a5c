#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/stop_strings.h"

using tandem::core::StopMatcher;

namespace {

// Feeds pieces; returns everything emitted (plus flush() when not stopped).
std::string run(StopMatcher& m, const std::vector<std::string>& pieces, bool* stopped = nullptr) {
  std::string out;
  bool st = false;
  for (const std::string& p : pieces) {
    StopMatcher::Result r = m.push(p);
    out += r.text;
    st = r.stopped;
    if (st) break;
  }
  if (!st) out += m.flush();
  if (stopped) *stopped = st;
  return out;
}

}  // namespace

TEST(StopStrings, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  auto r = m.push("hello <|im_");
  EXPECT_EQ(r.text, "hello <|im_");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, StopInsideOnePiece) {
  StopMatcher m({"<|im_end|>"});
  auto r = m.push("hello<|im_end|>rest");
  EXPECT_EQ(r.text, "hello");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(m.matched(), "<|im_end|>");
  // Everything after a stop is swallowed.
  auto r2 = m.push("more");
  EXPECT_EQ(r2.text, "");
  EXPECT_TRUE(r2.stopped);
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, StopAcrossPieceBoundaries) {
  StopMatcher m({"<|im_end|>"});
  auto a = m.push("hel");
  EXPECT_EQ(a.text, "hel");
  auto b = m.push("lo <|im_");
  EXPECT_EQ(b.text, "lo ");  // "<|im_" held back
  EXPECT_FALSE(b.stopped);
  EXPECT_EQ(m.held(), 5u);
  auto c = m.push("end|>tail");
  EXPECT_EQ(c.text, "");
  EXPECT_TRUE(c.stopped);
  EXPECT_TRUE(m.stopped());
}

TEST(StopStrings, StopSplitIntoSingleBytes) {
  StopMatcher m({"STOP"});
  bool stopped = false;
  std::string out = run(m, {"a", "b", "S", "T", "O", "P", "c"}, &stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "ab");
}

TEST(StopStrings, FalseAlarmIsReleased) {
  StopMatcher m({"<|im_end|>"});
  auto a = m.push("x <|im");
  EXPECT_EQ(a.text, "x ");
  auto b = m.push("port");
  EXPECT_EQ(b.text, "<|import");
  EXPECT_FALSE(b.stopped);
  EXPECT_EQ(m.held(), 0u);
}

TEST(StopStrings, FlushReturnsHeldText) {
  StopMatcher m({"<|im_end|>"});
  auto a = m.push("abc<|");
  EXPECT_EQ(a.text, "abc");
  EXPECT_EQ(m.flush(), "<|");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, OverlappingPrefixes) {
  {
    // "aaa" could be the start of "aab" only from its last two bytes.
    StopMatcher m({"aab"});
    EXPECT_EQ(m.push("aaa").text, "a");
    auto r = m.push("b");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.text, "");
  }
  {
    StopMatcher m({"abab"});
    EXPECT_EQ(m.push("aba").text, "");
    EXPECT_EQ(m.push("c").text, "abac");
    EXPECT_EQ(m.push("ab").text, "");
    auto r = m.push("ab");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.text, "");
  }
}

TEST(StopStrings, SeveralStopsFirstCompletedWins) {
  StopMatcher m({"User:", "\n\n"});
  auto r = m.push("answer\n\nUser: next");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "answer");
  EXPECT_EQ(m.matched(), "\n\n");

  // "bc" completes before "abcd", however the text is split.
  StopMatcher whole({"abcd", "bc"});
  EXPECT_EQ(whole.push("xabcd").text, "xa");
  EXPECT_EQ(whole.matched(), "bc");
  StopMatcher split({"abcd", "bc"});
  EXPECT_EQ(split.push("xab").text, "x");
  EXPECT_EQ(split.push("cd").text, "a");
  EXPECT_EQ(split.matched(), "bc");
}

TEST(StopStrings, EmptyStopIgnoredAndResetReuses) {
  StopMatcher m({"", "END"});
  EXPECT_EQ(m.push("abc").text, "abc");
  EXPECT_TRUE(m.push("xEND").stopped);
  m.reset();
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.matched(), "");
  EXPECT_EQ(m.push("fresh").text, "fresh");
}

TEST(StopStrings, Utf8StopAndText) {
  StopMatcher m(
      {"\xE2\x80\x94"
       "END"});  // em dash + END
  std::string out;
  out += m.push("caf\xC3\xA9 \xE2\x80").text;
  EXPECT_EQ(out, "caf\xC3\xA9 ");  // partial em dash held, character not split
  auto r = m.push(
      "\x94"
      "END!");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(out + r.text, "caf\xC3\xA9 ");
}

// Property: for random texts, stops and splits, the streamed output equals
// the text before the first-completing stop (or the whole text), and no
// emitted prefix is ever retracted.
TEST(StopStrings, RandomSplitsMatchReference) {
  std::mt19937 rng(1234);
  auto rand_str = [&](size_t min_len, size_t max_len) {
    std::uniform_int_distribution<size_t> len(min_len, max_len);
    std::uniform_int_distribution<int> ch(0, 2);
    std::string s(len(rng), 'a');
    for (char& c : s) c = static_cast<char>('a' + ch(rng));
    return s;
  };
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::string> stops;
    int n_stops = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < n_stops; ++i) stops.push_back(rand_str(1, 4));
    std::string text = rand_str(0, 30);

    // Reference: earliest end, then earliest start.
    size_t best_end = std::string::npos, best_pos = std::string::npos;
    for (const std::string& s : stops) {
      size_t pos = text.find(s);
      if (pos == std::string::npos) continue;
      size_t end = pos + s.size();
      if (end < best_end || (end == best_end && pos < best_pos)) {
        best_end = end;
        best_pos = pos;
      }
    }
    const bool expect_stop = best_pos != std::string::npos;
    const std::string expected = expect_stop ? text.substr(0, best_pos) : text;

    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      size_t n = 1 + rng() % 5;
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    StopMatcher m(stops);
    bool stopped = false;
    std::string got = run(m, pieces, &stopped);
    ASSERT_EQ(got, expected) << "text=" << text;
    ASSERT_EQ(stopped, expect_stop) << "text=" << text;
  }
}
