// Collects records whose values are views and emits them in batches. Values
// that live inside `stable` (the mapped input file) are passed as they are;
// anything else is copied into the batch first.
#pragma once

#include <syncwarden/connector.hpp>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::csv {

class view_batch {
public:
    view_batch(const sdk::host& h, std::string entity, sw_batch_mode mode, std::string_view stable,
               size_t batch_size = 4096)
        : host_(h), entity_(std::move(entity)), mode_(mode), stable_(stable), batch_size_(batch_size) {}

    // Returns true when the batch was emitted (so the caller may release input).
    bool add(std::string_view key, const std::vector<std::string_view>& values, sw_record_state state) {
        if (nf_ == 0) nf_ = values.size();
        keys_.push_back(keep(key));
        for (auto v : values) values_.push_back(keep(v));
        states_.push_back(state);
        if (states_.size() < batch_size_) return false;
        flush();
        return true;
    }

    // Emits what is pending. The first flush emits even an empty batch, so
    // the kernel learns the entity is present (and, in bulk mode, empty).
    void flush() {
        if (states_.empty() && emitted_) return;
        emitted_ = true;
        recs_.resize(states_.size());
        for (size_t i = 0; i < states_.size(); ++i)
            recs_[i] = {keys_[i], values_.data() + i * nf_, nf_, static_cast<uint32_t>(states_[i])};
        sw_batch b{sizeof(sw_batch), sdk::to_sw(entity_), static_cast<uint32_t>(mode_), recs_.data(), recs_.size()};
        host_.emit(b);
        keys_.clear();
        values_.clear();
        states_.clear();
        owned_.clear();
    }

private:
    sw_str keep(std::string_view v) {
        if (v.empty() || (v.data() >= stable_.data() && v.data() + v.size() <= stable_.data() + stable_.size()))
            return {v.data(), v.size()};
        owned_.emplace_back(v);
        return {owned_.back().data(), owned_.back().size()};
    }

    const sdk::host& host_;
    std::string entity_;
    sw_batch_mode mode_;
    std::string_view stable_;
    size_t batch_size_, nf_ = 0;
    bool emitted_ = false;
    std::vector<sw_str> keys_, values_;
    std::vector<sw_record_state> states_;
    std::vector<sw_record> recs_;
    std::deque<std::string> owned_;
};

}  // namespace syncwarden::csv
