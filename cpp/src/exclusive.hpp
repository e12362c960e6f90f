// cpp/src/exclusive.hpp: Exclusive, what one call at a time may use (a training record, the
// gradients, a stream): a second call meanwhile is refused, and told which call holds it.
// Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/errors.hpp"

#include <atomic>
#include <string>

namespace streamrnn {

/// Held by at most one call at a time, named by a static string ("backward", "step"). Taking it
/// is one atomic exchange: no lock, no allocation, no wait.
class Exclusive {
public:
    /// Takes it for `call`; false, and nothing taken, when another call holds it.
    bool try_take(const char* call) noexcept
    {
        const char* expected = nullptr;
        return holder_.compare_exchange_strong(expected, call, std::memory_order_acquire,
                                               std::memory_order_relaxed);
    }
    void release() noexcept { holder_.store(nullptr, std::memory_order_release); }
    /// The call that holds it, or null (a moment's view: for messages).
    const char* holder() const noexcept { return holder_.load(std::memory_order_relaxed); }

    /// Held for the life of a Hold; raises ConcurrencyError naming `call`, the holder and `what`
    /// ("this model's training record") when another call holds it.
    class Hold {
    public:
        Hold(Exclusive& resource, const char* call, const char* what) : resource_(&resource)
        {
            if (!resource.try_take(call)) {
                const char* holder = resource.holder();
                raise(ErrorKind::busy, std::string(call) + ": another thread is in " + (holder ? holder : "a call") +
                                           " on " + what + ", which is for one call at a time");
            }
        }
        ~Hold()
        {
            if (resource_)
                resource_->release();
        }
        Hold(Hold&& other) noexcept : resource_(other.resource_) { other.resource_ = nullptr; }
        /// Passes the resource on to whatever releases it later: this hold no longer does.
        void pass_on() noexcept { resource_ = nullptr; }
        Hold& operator=(Hold&&) = delete;
        Hold(const Hold&) = delete;

    private:
        Exclusive* resource_;
    };

    /// Held for the life of a TryHold when it was free: for calls that must not throw (a real-time
    /// stream's), which report a refusal themselves.
    class TryHold {
    public:
        TryHold(Exclusive& resource, const char* call) noexcept : resource_(resource), taken_(resource.try_take(call))
        {
        }
        ~TryHold()
        {
            if (taken_)
                resource_.release();
        }
        TryHold(const TryHold&) = delete;
        TryHold& operator=(const TryHold&) = delete;
        explicit operator bool() const noexcept { return taken_; }

    private:
        Exclusive& resource_;
        bool taken_;
    };

    /// f() run while holding it for `call`; false, and f not run, where another thread holds it.
    /// The form of a real-time object's short calls (a stream's reset and state copies).
    template <typename F>
    bool try_run(const char* call, F&& f) noexcept
    {
        const TryHold use(*this, call);
        if (use)
            f();
        return static_cast<bool>(use);
    }

private:
    std::atomic<const char*> holder_{nullptr};
};

}  // namespace streamrnn
