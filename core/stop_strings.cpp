#include "core/stop_strings.h"

#include <algorithm>

namespace tandem::core {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

StopMatcher::Result StopMatcher::push(std::string_view piece) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    return r;
  }
  buf_.append(piece);

  // The stop that completes first in the stream wins (earliest end; on a
  // tie, the earliest start, i.e. the longer string). Judging by end rather
  // than start makes the result independent of how the text was split into
  // pieces: with stops "abcd" and "bc", "bc" always wins on "abcd", whether
  // it arrives whole or as "abc" + "d".
  size_t best_pos = std::string::npos;
  size_t best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& s : stops_) {
    size_t pos = buf_.find(s);
    if (pos == std::string::npos) continue;
    size_t end = pos + s.size();
    if (end < best_end || (end == best_end && pos < best_pos)) {
      best_pos = pos;
      best_end = end;
      best = &s;
    }
  }
  if (best != nullptr) {
    r.text = buf_.substr(0, best_pos);
    r.stopped = true;
    stopped_ = true;
    matched_ = *best;
    buf_.clear();
    return r;
  }

  // No stop inside buf_; hold back the longest tail that is a proper prefix
  // of some stop string (it may complete with the next piece). Only tails
  // shorter than the longest stop can qualify.
  size_t hold = 0;
  const size_t max_tail = std::min(buf_.size(), max_len_ == 0 ? 0 : max_len_ - 1);
  for (size_t len = max_tail; len > 0; --len) {
    std::string_view tail(buf_.data() + buf_.size() - len, len);
    bool is_prefix = std::any_of(stops_.begin(), stops_.end(), [&](const std::string& s) {
      return s.size() > len && std::string_view(s).substr(0, len) == tail;
    });
    if (is_prefix) {
      hold = len;
      break;
    }
  }
  r.text = buf_.substr(0, buf_.size() - hold);
  buf_.erase(0, buf_.size() - hold);
  return r;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(buf_);
  return out;
}

void StopMatcher::reset() {
  buf_.clear();
  stopped_ = false;
  matched_.clear();
}

}  // namespace tandem::core
