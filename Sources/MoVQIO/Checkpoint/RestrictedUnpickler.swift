/// A pickle interpreter that never runs code. It understands the opcodes
/// `torch.save` emits and only these callables: `collections.OrderedDict`,
/// `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter` and
/// the `torch.*Storage` types. Anything else is refused with an error that
/// names it.
///
/// Objects live in one flat arena and refer to each other by index, so a
/// hostile pickle cannot build a deep recursive structure (whose release
/// would overflow the stack) or a reference cycle (a leak): freeing the
/// result is freeing a few flat arrays. Each opcode adds at most one object,
/// so memory is bounded by the pickle's size.
package struct RestrictedUnpickler {
    /// A tensor reference: storage key + dtype, view geometry.
    package struct TensorRef { var storageKey: String; var dtype: DType; var storageOffset: Int; var shape: [Int]; var stride: [Int] }
    /// An index into the arena of objects.
    package typealias Ref = Int

    package enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
        case tuple([Ref])
        /// Index into `lists` / `dicts` (mutable containers).
        case list(Int), dict(Int)
        case global(String)  // "module.name" of an allowed callable
        case storage(key: String, dtype: DType)
        case storageType(DType)
        case tensor(TensorRef)
    }

    static let storageTypes: [String: DType] = [
        "torch.FloatStorage": .f32, "torch.HalfStorage": .f16, "torch.BFloat16Storage": .bf16,
        "torch.DoubleStorage": .f64, "torch.LongStorage": .i64, "torch.IntStorage": .i32,
        "torch.ShortStorage": .i16, "torch.CharStorage": .i8, "torch.ByteStorage": .u8, "torch.BoolStorage": .bool,
    ]
    static let callables: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    ]

    let path: String
    var r: ByteReader
    /// Every object made so far.
    package private(set) var objects: [Value] = []
    package private(set) var lists: [[Ref]] = []
    package private(set) var dicts: [[(key: Ref, value: Ref)]] = []
    var stack: [Ref] = []
    /// Stack heights at each open MARK (CPython's "metastack").
    var marks: [Int] = []
    var memo: [Int: Ref] = [:]

    package init(_ bytes: UnsafeRawBufferPointer, path: String) {
        self.path = path; r = ByteReader(bytes, path: path)
    }

    func reject(_ why: String) -> MoVQError { .pickleRejected("\(path): \(why)") }

    /// The object at `ref`.
    package subscript(_ ref: Ref) -> Value { objects[ref] }

    /// The (key, value) pairs of a dict object, nil for anything else.
    package func dictItems(_ ref: Ref) -> [(key: Ref, value: Ref)]? {
        if case .dict(let d) = objects[ref] { return dicts[d] }
        return nil
    }

    /// The string an object holds, nil for anything else.
    package func stringValue(_ ref: Ref) -> String? {
        if case .string(let s) = objects[ref] { return s }
        return nil
    }

    mutating func push(_ v: Value) { objects.append(v); stack.append(objects.count - 1) }

    mutating func popRef() throws -> Ref {
        if let m = marks.last, stack.count <= m { throw reject("pop across a MARK") }
        guard let v = stack.popLast() else { throw reject("stack underflow") }
        return v
    }

    mutating func pop() throws -> Value { objects[try popRef()] }

    /// The top of the stack (not across a MARK).
    func top() throws -> Ref {
        guard let t = stack.last, stack.count > (marks.last ?? 0) else { throw reject("empty stack") }
        return t
    }

    mutating func popToMark() throws -> [Ref] {
        guard let m = marks.popLast() else { throw reject("missing MARK") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    mutating func string(_ n: Int) throws -> String {
        String(decoding: try r.bytes(n, "pickle string"), as: UTF8.self)
    }

    mutating func memoize(_ key: Int) throws {
        memo[key] = try top()
    }

    func global(_ name: String) throws -> Value {
        if let t = Self.storageTypes[name] { return .storageType(t) }
        if Self.callables.contains(name) { return .global(name) }
        throw reject("global '\(name)' is not allowed (only tensors, storages and OrderedDict)")
    }

    /// The container index of the list on top of the stack.
    func topList(_ op: String) throws -> Int {
        guard case .list(let l) = objects[try top()] else { throw reject("\(op) to a non-list") }
        return l
    }

    func topDict(_ op: String) throws -> Int {
        guard case .dict(let d) = objects[try top()] else { throw reject("\(op) on a non-dict") }
        return d
    }

    mutating func newList(_ items: [Ref]) { lists.append(items); push(.list(lists.count - 1)) }
    mutating func newDict(_ items: [(key: Ref, value: Ref)]) { dicts.append(items); push(.dict(dicts.count - 1)) }

    func pairs(_ items: [Ref], _ op: String) throws -> [(key: Ref, value: Ref)] {
        guard items.count % 2 == 0 else { throw reject("odd \(op) item count") }
        return stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
    }

    /// Runs the pickle to STOP and returns the top-level object.
    package mutating func run() throws -> Ref {
        while true {
            let op = try r.u8("pickle opcode")
            switch op {
            case 0x80: _ = try r.u8()                                   // PROTO
            case 0x95: _ = try r.u64()                                  // FRAME
            case 0x2E:                                                  // STOP
                guard marks.isEmpty else { throw reject("STOP with an open MARK") }
                return try popRef()
            case 0x7D: newDict([])                                      // EMPTY_DICT
            case 0x5D: newList([])                                      // EMPTY_LIST
            case 0x29: push(.tuple([]))                                 // EMPTY_TUPLE
            case 0x28: marks.append(stack.count)                        // MARK
            case 0x4E: push(.none)                                      // NONE
            case 0x88: push(.bool(true))                                // NEWTRUE
            case 0x89: push(.bool(false))                               // NEWFALSE
            case 0x4A: push(.int(Int(Int32(bitPattern: try r.u32()))))  // BININT
            case 0x4B: push(.int(Int(try r.u8())))                      // BININT1
            case 0x4D: push(.int(Int(try r.u16())))                     // BININT2
            case 0x8A:                                                  // LONG1
                let n = Int(try r.u8())
                guard n <= 8 else { throw reject("integer wider than 64 bits") }
                let b = try r.bytes(n, "long")
                var v: UInt64 = 0
                for i in 0..<n { v |= UInt64(b[i]) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && (b[n - 1] & 0x80) != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
                push(.int(Int(Int64(bitPattern: v))))
            case 0x47:                                                  // BINFLOAT (big-endian)
                let b = try r.bytes(8, "float")
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                push(.float(Double(bitPattern: v)))
            case 0x58: push(.string(try string(Int(try r.u32()))))      // BINUNICODE
            case 0x8C: push(.string(try string(Int(try r.u8()))))       // SHORT_BINUNICODE
            case 0x8D:                                                  // BINUNICODE8
                let n = try r.u64()
                guard n <= UInt64(r.remaining) else { throw reject("string longer than the pickle") }
                push(.string(try string(Int(n))))
            case 0x55: push(.string(try string(Int(try r.u8()))))       // SHORT_BINSTRING
            case 0x54: push(.string(try string(Int(try r.u32()))))      // BINSTRING
            case 0x43: push(.bytes(Array(try r.bytes(Int(try r.u8()), "bytes"))))   // SHORT_BINBYTES
            case 0x42: push(.bytes(Array(try r.bytes(Int(try r.u32()), "bytes"))))  // BINBYTES
            case 0x71: try memoize(Int(try r.u8()))                     // BINPUT
            case 0x72: try memoize(Int(try r.u32()))                    // LONG_BINPUT
            case 0x94: try memoize(memo.count)                          // MEMOIZE
            case 0x68, 0x6A:                                            // BINGET, LONG_BINGET
                let k = op == 0x68 ? Int(try r.u8()) : Int(try r.u32())
                guard let v = memo[k] else { throw reject("memo key \(k) undefined") }
                stack.append(v)
            case 0x30: _ = try popRef()                                 // POP
            case 0x31: _ = try popToMark()                              // POP_MARK
            case 0x32: stack.append(try top())                          // DUP
            case 0x74: push(.tuple(try popToMark()))                    // TUPLE
            case 0x85: let a = try popRef(); push(.tuple([a]))          // TUPLE1
            case 0x86: let b = try popRef(), a = try popRef(); push(.tuple([a, b]))
            case 0x87: let c = try popRef(), b = try popRef(), a = try popRef(); push(.tuple([a, b, c]))
            case 0x6C: newList(try popToMark())                         // LIST
            case 0x64: newDict(try pairs(try popToMark(), "DICT"))      // DICT
            case 0x61:                                                  // APPEND
                let v = try popRef()
                lists[try topList("APPEND")].append(v)
            case 0x65:                                                  // APPENDS
                let items = try popToMark()
                lists[try topList("APPENDS")] += items
            case 0x73:                                                  // SETITEM
                let v = try popRef(), k = try popRef()
                dicts[try topDict("SETITEM")].append((k, v))
            case 0x75:                                                  // SETITEMS
                let items = try pairs(try popToMark(), "SETITEMS")
                dicts[try topDict("SETITEMS")] += items
            case 0x63:                                                  // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                push(try global("\(module).\(name)"))
            case 0x93:                                                  // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else { throw reject("STACK_GLOBAL needs strings") }
                push(try global("\(module).\(name)"))
            case 0x51:                                                  // BINPERSID
                push(try persistentLoad(try pop()))
            case 0x52:                                                  // REDUCE
                let args = try pop(), fn = try pop()
                push(try reduce(fn, args))
            case 0x81:                                                  // NEWOBJ
                let args = try pop(), cls = try pop()
                push(try reduce(cls, args))
            case 0x62:                                                  // BUILD: state of dicts/tensors is metadata we ignore
                _ = try popRef()
                switch objects[try top()] {
                case .dict, .tensor: break
                default: throw reject("BUILD on an unsupported object")
                }
            default:
                throw reject("opcode 0x\(String(op, radix: 16)) is not supported")
            }
        }
    }

    mutating func line() throws -> String {
        var s: [UInt8] = []
        while true {
            let c = try r.u8("pickle GLOBAL name")
            if c == 0x0A { break }
            s.append(c)
            if s.count > 256 { throw reject("GLOBAL name too long") }
        }
        return String(decoding: s, as: UTF8.self)
    }

    func persistentLoad(_ pid: Value) throws -> Value {
        guard case .tuple(let t) = pid, t.count >= 5, case .string("storage") = objects[t[0]],
              case .storageType(let dtype) = objects[t[1]], case .string(let key) = objects[t[2]] else {
            throw reject("persistent id is not a torch storage reference")
        }
        return .storage(key: key, dtype: dtype)
    }

    mutating func reduce(_ fn: Value, _ args: Value) throws -> Value {
        guard case .global(let name) = fn, case .tuple(let a) = args else { throw reject("REDUCE of a non-callable") }
        switch name {
        case "collections.OrderedDict":
            dicts.append([])
            return .dict(dicts.count - 1)
        case "torch._utils._rebuild_parameter":
            guard let first = a.first, case .tensor(let t) = objects[first] else { throw reject("_rebuild_parameter without a tensor") }
            return .tensor(t)
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case .storage(let key, let dtype) = objects[a[0]], case .int(let off) = objects[a[1]],
                  case .tuple(let size) = objects[a[2]], case .tuple(let stride) = objects[a[3]] else {
                throw reject("malformed _rebuild_tensor_v2 arguments")
            }
            func ints(_ v: [Ref]) throws -> [Int] {
                try v.map { guard case .int(let i) = objects[$0] else { throw reject("non-integer tensor size") }; return i }
            }
            guard size.count <= 16, size.count == stride.count else { throw reject("tensor with \(size.count) sizes and \(stride.count) strides") }
            return .tensor(TensorRef(storageKey: key, dtype: dtype, storageOffset: off, shape: try ints(size), stride: try ints(stride)))
        default:
            throw reject("call of '\(name)'")
        }
    }
}
