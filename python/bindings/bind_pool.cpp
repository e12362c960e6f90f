// python/bindings/bind_pool.cpp: streamrnn._core.Pool (many live streams in slots, stepped as one
// batch) and streamrnn._core.Batcher (frames from any thread, futures completed after each batch).
// Part of streamrnn, MIT licence.
#include "arrays.hpp"
#include "spec.hpp"
#include "state.hpp"

#include "streamrnn/batcher.hpp"
#include "streamrnn/errors.hpp"
#include "streamrnn/pool.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace streamrnn::python {

namespace {

/// The ids of a call: one id (`single`, for unbatched arrays) or a list of them.
struct Ids {
    std::vector<StreamId> owned;
    const StreamId* data = nullptr;
    Index n = 0;
    bool single = false;
};

/// One id: TypeError for anything but an integer (a bool too), KeyError for a negative one or one
/// past 64 bits, which no pool has, naming it as given.
StreamId id_value(nb::handle value, const char* call, const char* name)
{
    long long id = 0;
    bool fits = false;
    if (!integer_value(value, id, fits))
        throw nb::type_error((std::string(call) + ": " + name + ": expected an integer stream id, got " +
                              python_type(value))
                                 .c_str());
    if (!fits || id < 0)
        throw nb::key_error((std::string(call) + ": no open stream of this pool has id " + text_of(value) +
                             " (ids are never negative)")
                                .c_str());
    return static_cast<StreamId>(id);
}

/// The ids of a call: an int (one id, `single`), a sequence of ints, or an integer array (NumPy,
/// torch) of one dimension, or of none (one id). An int64 or uint64 NumPy array is read in place.
Ids read_ids(nb::handle obj, const char* call)
{
    Ids ids;
    std::size_t n = 0;
    if (direct_words(obj, ids.data, n)) {  // step's path without allocation
        ids.n = static_cast<Index>(n);
        return ids;
    }
    const bool array = nb::hasattr(obj, "dtype") && nb::hasattr(obj, "ndim");
    if (array && nb::cast<long long>(obj.attr("ndim")) > 0) {
        const IntArray values = to_integers(obj, "ids");
        if (values.shape.size() > 1)
            throw_shape(std::string(call) + ": ids", "(N,), one id per stream", values.shape);
        for (const std::int64_t v : values.values)
            ids.owned.push_back(static_cast<StreamId>(v));  // a negative one: unknown, named as given
    } else if (array || PyLong_Check(obj.ptr()) || (PyIndex_Check(obj.ptr()) && !PySequence_Check(obj.ptr()))) {
        ids.owned.push_back(id_value(obj, call, "ids"));
        ids.single = true;
    } else if (PySequence_Check(obj.ptr()) && !PyUnicode_Check(obj.ptr()) && !PyBytes_Check(obj.ptr())) {
        const nb::object items = nb::steal(PySequence_Fast(obj.ptr(), "ids"));
        if (!items.is_valid())
            throw nb::python_error();
        const Py_ssize_t count = PySequence_Fast_GET_SIZE(items.ptr());
        for (Py_ssize_t i = 0; i < count; ++i)
            ids.owned.push_back(id_value(PySequence_Fast_GET_ITEM(items.ptr(), i), call, "ids"));
    } else {
        throw nb::type_error((std::string(call) + ": ids: expected an id or a sequence of ids (ints), got " +
                              python_type(obj))
                                 .c_str());
    }
    ids.data = ids.owned.data();
    ids.n = static_cast<Index>(ids.owned.size());
    return ids;
}

/// An id for a message, as Python wrote it (a negative one was read as a huge unsigned one).
std::string id_text(StreamId id) { return std::to_string(static_cast<long long>(id)); }

/// Raises what a refused pool call means: KeyError for an id the pool does not have, RuntimeError
/// when another thread steps it, ValueError for the rest.
[[noreturn]] void raise_refusal(const char* call, const PoolResult& result, const StreamId* ids, const Pool& pool)
{
    const std::string what = std::string(call) + ": ";
    switch (result.status) {
    case PoolStatus::unknown_id: {
        const std::string id = id_text(ids[result.at < 0 ? 0 : result.at]);
        throw nb::key_error((what + "no open stream of this pool has id " + id + " (closed, or never opened)").c_str());
    }
    case PoolStatus::repeated_id:
        if (result.at >= pool.capacity())
            throw ArgumentError(what + "ids: more ids than the pool's " + std::to_string(pool.capacity()) +
                                " slots, so some id is named twice");
        throw ArgumentError(what + "ids: id " + id_text(ids[result.at]) +
                            " is named twice; a call steps each stream at most once");
    case PoolStatus::full:
        throw ArgumentError(what + "the pool is full: all " + std::to_string(pool.capacity()) +
                            " slots are taken; close a stream, or make a larger pool");
    case PoolStatus::busy: raise(ErrorKind::busy, what + pool_status_text(result.status));
    default: throw ArgumentError(what + "blob: " + pool_status_text(result.status));
    }
}

void check(const char* call, const PoolResult& result, const StreamId* ids, const Pool& pool)
{
    if (!result)
        raise_refusal(call, result, ids, pool);
}

/// A slot call, with the GIL released: it may wait for a step on another thread.
template <typename Call>
void slot_call(const Pool& pool, const char* name, const StreamId* ids, Call call)
{
    PoolResult result;
    {
        nb::gil_scoped_release release;
        result = call();
    }
    check(name, result, ids, pool);
}

void run_step(Pool& pool, const Ids& ids, const float* x, float* y)
{
    PoolResult result;
    if (step_releases_gil(pool.model().spec(), ids.n)) {
        nb::gil_scoped_release release;
        result = pool.step(ids.data, ids.n, x, y);
    } else {
        result = pool.step(ids.data, ids.n, x, y);
    }
    check("step", result, ids.data, pool);
}

nb::object step(Pool& pool, nb::handle ids_in, nb::handle x_in, nb::handle out_in)
{
    const ModelSpec& spec = pool.model().spec();
    const Ids ids = read_ids(ids_in, "step");

    // The real-time path: an int64 id array and float32 arrays of the right shapes, no allocation.
    DirectArray x_direct, out_direct;
    if (!ids.single && direct_array(x_in, false, x_direct) && direct_array(out_in, true, out_direct) &&
        x_direct.has_shape(ids.n, spec.input_size) && out_direct.has_shape(ids.n, spec.output_size()) &&
        !overlaps(x_direct.data, x_direct.size(), out_direct.data, out_direct.size())) {
        run_step(pool, ids, x_direct.data, out_direct.data);
        return nb::borrow(out_in);
    }

    const FloatArray x = to_floats(x_in, "x");
    const Shape x_shape = shape_of(x);
    const Shape expected = ids.single ? Shape{spec.input_size} : Shape{ids.n, spec.input_size};
    if (x_shape != expected)
        throw_shape("x", ids.single ? "(I,) = " + shape_str(expected) + " for one id"
                                    : "(N, I) = " + shape_str(expected) + ", one row per id",
                    x_shape);
    const Shape y_shape = ids.single ? Shape{spec.output_size()} : Shape{ids.n, spec.output_size()};
    if (out_in.is_none()) {
        float* y;
        NumpyArray out = new_array(y_shape, &y);
        run_step(pool, ids, x.data(), y);
        return nb::cast(out);
    }
    const OutArray out = checked_out(out_in, y_shape, x);
    run_step(pool, ids, x.data(), out.data());
    return nb::borrow(out_in);
}

NumpyArray process(Pool& pool, nb::handle ids_in, nb::handle xs_in)
{
    const ModelSpec& spec = pool.model().spec();
    const Ids ids = read_ids(ids_in, "process");
    const FloatArray xs = to_floats(xs_in, "xs");
    const Shape shape = shape_of(xs);
    const long long I = spec.input_size, N = ids.n;
    long long T = -1;
    if (ids.single && shape.size() == 2 && shape[1] == I)
        T = shape[0];
    else if (!ids.single && shape.size() == 3 && shape[2] == I && shape[spec.batch_first ? 0 : 1] == N)
        T = shape[spec.batch_first ? 1 : 0];
    if (T < 0)
        throw_shape("xs", ids.single                ? "(T, I) with I = " + std::to_string(I) + " for one id"
                          : spec.batch_first ? "(N, T, I) with (N, I) = " + shape_str({N, I}) + " (batch_first)"
                                             : "(T, N, I) with (N, I) = " + shape_str({N, I}),
                    shape);
    Shape y_shape = shape;
    y_shape.back() = spec.output_size();
    float* y;
    NumpyArray out = new_array(y_shape, &y);
    PoolResult result;
    {
        nb::gil_scoped_release release;
        result = pool.process(ids.data, ids.n, xs.data(), y, static_cast<Index>(T));
    }
    check("process", result, ids.data, pool);
    return out;
}

StateShape one_row(const Pool& pool) { return state_shape(pool.model().spec(), 1, true); }

/// A state for one stream read and checked whole (None: the initial state), into h and c.
bool read_one_state(const Pool& pool, nb::handle state, std::vector<float>& h, std::vector<float>& c)
{
    if (state.is_none())
        return false;
    h.resize(pool.h_size());
    c.resize(pool.c_size());
    read_state(state, pool.model().spec(), one_row(pool), true, h.data(), c.data());
    return true;
}

nb::object get_state(const Pool& pool, nb::handle id_in)
{
    const StreamId id = id_value(id_in, "state", "id");
    float *h, *c;
    nb::object state = new_state(pool.model().spec(), one_row(pool), &h, &c);
    slot_call(pool, "state", &id, [&] { return pool.get_state(id, h, c); });
    return state;
}

void set_state(Pool& pool, nb::handle id_in, nb::handle state)
{
    const StreamId id = id_value(id_in, "set_state", "id");
    std::vector<float> h, c;
    if (!read_one_state(pool, state, h, c)) {
        slot_call(pool, "set_state", &id, [&] { return pool.reset(&id, 1); });
        return;
    }
    slot_call(pool, "set_state", &id, [&] { return pool.set_state(id, h.data(), c.empty() ? nullptr : c.data()); });
}

nb::bytes snapshot(const Pool& pool, nb::handle id_in)
{
    const StreamId id = id_value(id_in, "snapshot", "id");
    std::vector<unsigned char> bytes(pool.snapshot_size());
    slot_call(pool, "snapshot", &id, [&] { return pool.snapshot(id, bytes.data(), bytes.size()); });
    return nb::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

StreamId restore(Pool& pool, nb::handle blob)
{
    Py_buffer view;
    if (PyObject_GetBuffer(blob.ptr(), &view, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        throw nb::type_error(("blob: expected bytes (a snapshot), got " + python_type(blob)).c_str());
    }
    std::vector<unsigned char> bytes(static_cast<const unsigned char*>(view.buf),
                                     static_cast<const unsigned char*>(view.buf) + view.len);
    PyBuffer_Release(&view);
    StreamId id = 0;
    slot_call(pool, "restore", nullptr, [&] { return pool.restore(bytes.data(), bytes.size(), &id); });
    return id;
}

nb::list ids_of(const Pool& pool)
{
    std::vector<StreamId> ids(static_cast<std::size_t>(pool.capacity()));
    Index n;
    {
        nb::gil_scoped_release release;
        n = pool.ids(ids.data(), pool.capacity());
    }
    nb::list out;
    for (Index i = 0; i < n; ++i)
        out.append(static_cast<long long>(ids[static_cast<std::size_t>(i)]));
    return out;
}

/// The Python exception object for the exception in flight: what a frame's future fails with.
nb::object current_exception_object()
{
    try {
        throw;
    } catch (nb::python_error& error) {
        return nb::borrow(error.value());
    } catch (const nb::builtin_exception& error) {
        PyObject* type = error.type() == nb::exception_type::type_error  ? PyExc_TypeError
                         : error.type() == nb::exception_type::key_error ? PyExc_KeyError
                                                                          : PyExc_ValueError;
        return nb::handle(type)(error.what());
    } catch (const std::invalid_argument& error) {
        return nb::handle(PyExc_ValueError)(error.what());
    } catch (const std::exception& error) {
        return nb::handle(PyExc_RuntimeError)(error.what());
    }
}

/// Batcher over a Pool object, with futures. submit makes a concurrent.futures.Future and hands the
/// frame to the C++ batcher, whose thread steps batches without the GIL and queues their results
/// here, never waiting for the GIL itself. Futures are completed under the GIL by whichever comes
/// first: the next submit on any thread, or a delivery thread of this batcher's that waits for the
/// GIL. So a busy interpreter (threads taking turns with the GIL) delays a result by a submit's
/// turn, not by a GIL hand-over, and never holds up the next batch.
class PyBatcher {
public:
    PyBatcher(nb::object pool_object, Index max_batch, double max_delay)
        : pool_object_(std::move(pool_object)), pool_(nb::cast<Pool&>(pool_object_)),
          future_type_(nb::module_::import_("concurrent.futures").attr("Future")),
          H_out_(pool_.model().spec().output_size())
    {
        batcher_ = std::make_unique<Batcher>(pool_, max_batch, max_delay,
                                             [this](const Batcher::Result* done, Index n) { queue(done, n); });
        delivery_ = std::thread([this] { deliver_loop(); });
    }
    /// With the GIL held, as every call here.
    ~PyBatcher()
    {
        close();
        if (!delivery_.joinable())
            return;
        if (std::this_thread::get_id() == delivery_.get_id()) {
            delivery_.detach();  // destroyed from a callback on the delivery thread, which ends by itself
        } else {
            nb::gil_scoped_release release;
            delivery_.join();
        }
    }
    PyBatcher(const PyBatcher&) = delete;
    PyBatcher& operator=(const PyBatcher&) = delete;

    nb::object submit(nb::handle id_in, nb::handle x_in)
    {
        if (closed_)
            raise(ErrorKind::busy, "submit: the batcher is closed");
        nb::object future = future_type_();
        const ModelSpec& spec = pool_.model().spec();
        try {
            const StreamId id = id_value(id_in, "submit", "id");
            const FloatArray x = to_floats(x_in, "x");
            const Shape shape = shape_of(x);
            if (shape != Shape{spec.input_size} && shape != Shape{1, spec.input_size})
                throw_shape("x", "(I,) = " + shape_str({spec.input_size}) + ", one frame", shape);
            const std::uint64_t ticket = next_ticket_++;
            futures_.emplace(ticket, future);
            if (!batcher_->submit(id, x.data(), ticket)) {
                futures_.erase(ticket);
                raise(ErrorKind::busy, "submit: the batcher is closed");
            }
        } catch (const ConcurrencyError&) {
            throw;
        } catch (...) {
            future.attr("set_exception")(current_exception_object());
        }
        deliver_queued();
        return future;
    }

    /// Steps what is pending and completes its futures, then stops both threads; later submits
    /// raise RuntimeError. From a future's callback too.
    void close()
    {
        if (closed_)
            return;
        closed_ = true;
        {
            nb::gil_scoped_release release;  // neither thread needs the GIL to finish
            batcher_->close();
            {
                const std::lock_guard<std::mutex> lock(mutex_);
                stopping_ = true;
            }
            ready_.notify_one();
            if (std::this_thread::get_id() != delivery_.get_id())
                delivery_.join();
        }
        if (delivering_)
            return;  // from a callback: the completion under way delivers the rest
        deliver_queued();
        for (auto& entry : futures_)  // none is left once the batcher has stepped every frame
            fail(entry.second, nb::handle(PyExc_RuntimeError)("the streamrnn.Batcher closed before this frame"));
        futures_.clear();
    }

    Batcher& batcher()
    {
        if (closed_)
            raise(ErrorKind::busy, "the batcher is closed");
        return *batcher_;
    }
    bool closed() const { return closed_; }
    nb::object pool() const { return pool_object_; }

private:
    struct Done {
        std::uint64_t ticket;
        StreamId id;
        PoolStatus status;
        std::size_t y;  ///< its output's offset in outputs_
    };

    /// The batcher's thread: a batch's results, queued (no GIL).
    void queue(const Batcher::Result* done, Index n)
    {
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            for (Index i = 0; i < n; ++i) {
                queued_.push_back({done[i].ticket, done[i].id, done[i].status, outputs_.size()});
                if (done[i].y)
                    outputs_.insert(outputs_.end(), done[i].y, done[i].y + H_out_);
            }
        }
        ready_.notify_one();
    }

    /// The delivery thread: waits for results, then for the GIL, and completes them.
    void deliver_loop()
    {
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mutex_);
                ready_.wait(lock, [&] { return !queued_.empty() || stopping_; });
                if (stopping_)
                    return;  // close() completes what is left
            }
            const nb::gil_scoped_acquire acquire;
            if (closed_)
                return;
            // Held while completing, so that a callback letting go of the batcher destroys it
            // after this, not inside it; if this is the last reference, this thread ends here.
            nb::object self = nb::find(this);
            deliver_queued();
            if (Py_REFCNT(self.ptr()) == 1) {
                self.reset();  // ~PyBatcher: close() does not wait for this thread, which touches nothing more
                return;
            }
        }
    }

    /// Completes the queued futures (GIL held); one thread at a time, the others leave it to it.
    void deliver_queued() noexcept
    {
        if (delivering_)
            return;
        delivering_ = true;
        for (;;) {
            {
                const std::lock_guard<std::mutex> lock(mutex_);
                if (queued_.empty())
                    break;
                taken_.swap(queued_);
                taken_outputs_.swap(outputs_);
            }
            for (const Done& done : taken_)
                complete(done);
            taken_.clear();
            taken_outputs_.clear();
        }
        delivering_ = false;
    }

    void complete(const Done& done) noexcept
    {
        try {
            const auto found = futures_.find(done.ticket);
            if (found == futures_.end())
                return;
            const nb::object future = std::move(found->second);
            futures_.erase(found);
            // False for a future cancelled meanwhile: its frame was stepped, its result dropped.
            if (!nb::cast<bool>(future.attr("set_running_or_notify_cancel")()))
                return;
            if (done.status == PoolStatus::ok)
                future.attr("set_result")(copy_array({H_out_}, taken_outputs_.data() + done.y));
            else
                future.attr("set_exception")(nb::handle(PyExc_KeyError)(
                    "submit: no open stream of this pool has id " + id_text(done.id) +
                    " (closed before its frame was stepped)"));
        } catch (nb::python_error& error) {
            error.discard_as_unraisable("streamrnn.Batcher completing a future");
        } catch (...) {
        }
    }

    static void fail(const nb::object& future, const nb::object& exception)
    {
        try {
            if (nb::cast<bool>(future.attr("set_running_or_notify_cancel")()))
                future.attr("set_exception")(exception);
        } catch (nb::python_error& error) {
            error.discard_as_unraisable("streamrnn.Batcher failing a future");
        }
    }

    nb::object pool_object_;
    Pool& pool_;
    nb::object future_type_;
    const long long H_out_;
    // Under the GIL:
    std::unordered_map<std::uint64_t, nb::object> futures_;
    std::uint64_t next_ticket_ = 0;
    bool closed_ = false;
    bool delivering_ = false;
    std::vector<Done> taken_;
    std::vector<float> taken_outputs_;
    // Under mutex_: results from the batcher's thread.
    std::mutex mutex_;
    std::condition_variable ready_;
    std::vector<Done> queued_;
    std::vector<float> outputs_;
    bool stopping_ = false;
    std::unique_ptr<Batcher> batcher_;
    std::thread delivery_;
};


}  // namespace

void bind_pool(nb::module_& m)
{
    nb::class_<Pool>(m, "Pool",
                     "Live streams of one unidirectional model in slots, any of them stepped together as one batch:\n"
                     "each named stream gets what m.stream(1) fed the same inputs would give. Every buffer is made\n"
                     "with the pool; step(ids, x, out=) with an int64 id array then allocates nothing. Ids are never\n"
                     "reused. step and process are for one thread at a time; the other calls may come from any thread,\n"
                     "also while another steps (they wait for the step).")
        .def("open",
             [](Pool& pool, nb::handle state) {
                 std::vector<float> h, c;
                 const bool given = read_one_state(pool, state, h, c);
                 StreamId id = 0;
                 slot_call(pool, "open", nullptr, [&] {
                     return pool.open(&id, given ? h.data() : nullptr, given && !c.empty() ? c.data() : nullptr);
                 });
                 return static_cast<long long>(id);
             },
             "state"_a.none() = nb::none(),
             "A new stream, at the initial state or at `state` (shaped as m.stream(1).state, or without its\n"
             "batch axis); returns its id. ValueError when every slot is taken.")
        .def("step", &step, "ids"_a.none(), "x"_a.none(), "out"_a.none() = nb::none(),
             "One step of the named streams: x (N, I), one row per id in that order -> (N, H_out); an int id\n"
             "with x (I,) -> (H_out,). With out= it writes there and returns out.")
        .def("process", &process, "ids"_a.none(), "xs"_a.none(),
             "T steps of the named streams: xs (T, N, I) ((N, T, I) when batch_first) -> (T, N, H_out)\n"
             "(alike); an int id with xs (T, I) -> (T, H_out).")
        .def("reset",
             [](Pool& pool, nb::handle ids_in) {
                 const Ids ids = read_ids(ids_in, "reset");
                 slot_call(pool, "reset", ids.data, [&] { return pool.reset(ids.data, ids.n); });
             },
             "ids"_a.none(), "The named streams (an id or ids) back to the initial state.")
        .def("state", &get_state, "id"_a.none(),
             "A copy of one stream's state, shaped as m.stream(1).state: h (L, 1, H_out), or (h, c).")
        .def("set_state", &set_state, "id"_a.none(), "state"_a.none(),
             "Sets one stream's state (checked whole first; None: the initial state).")
        .def("snapshot", &snapshot, "id"_a.none(),
             "One stream's state as bytes, with the model's architecture and a digest of its weights, in a\n"
             "versioned form that restore() reads in any pool of the same model on any machine.")
        .def("restore", &restore, "blob"_a.none(),
             "A new stream from a snapshot; returns its id. ValueError for bytes that are not a snapshot, or a\n"
             "snapshot of another model (architecture or weights).")
        .def("fork",
             [](Pool& pool, nb::handle from_in) {
                 const StreamId from = id_value(from_in, "fork", "id");
                 StreamId id = 0;
                 slot_call(pool, "fork", &from, [&] { return pool.fork(from, &id); });
                 return static_cast<long long>(id);
             },
             "id"_a.none(), "A new stream with a copy of the state of stream `id`; returns its id.")
        .def("close",
             [](Pool& pool, nb::handle id_in) {
                 const StreamId id = id_value(id_in, "close", "id");
                 slot_call(pool, "close", &id, [&] { return pool.close(id); });
             },
             "id"_a.none(), "Frees the stream's slot; its id is never valid again.")
        .def("ids", &ids_of, "The ids of the open streams, ascending.")
        .def("__len__", &Pool::size)
        .def("__contains__",
             [](const Pool& pool, nb::handle id) {
                 long long value = 0;
                 bool fits = false;
                 if (!integer_value(id, value, fits) || !fits || value < 0)
                     return false;
                 nb::gil_scoped_release release;
                 return pool.contains(static_cast<StreamId>(value));
             },
             "id"_a.none())
        .def_prop_ro("capacity", &Pool::capacity, "Slots: streams that may be open at once.")
        .def_prop_ro("snapshot_size", &Pool::snapshot_size, "Bytes of every snapshot of this pool's streams.");

    nb::class_<PyBatcher>(m, "Batcher", "The engine of streamrnn.Batcher: use that.")
        .def(nb::init<nb::object, Index, double>(), "pool"_a, "max_batch"_a, "max_delay"_a)
        .def("submit", &PyBatcher::submit, "id"_a.none(), "x"_a.none())
        .def("close", &PyBatcher::close)
        .def_prop_ro("closed", &PyBatcher::closed)
        .def_prop_ro("pool", &PyBatcher::pool)
        .def_prop_ro("pending", [](PyBatcher& b) { return b.batcher().pending(); })
        .def_prop_ro("batches", [](PyBatcher& b) { return b.batcher().batches(); })
        .def_prop_ro("frames", [](PyBatcher& b) { return b.batcher().frames(); });
}

}  // namespace streamrnn::python
