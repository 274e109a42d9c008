/// A pickle interpreter that never runs code. It understands the opcodes
/// `torch.save` emits and only these callables: `collections.OrderedDict`,
/// `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter` and
/// the `torch.*Storage` types. Anything else is refused with an error that
/// names it.
struct RestrictedUnpickler {
    /// A tensor reference: storage key + dtype, view geometry.
    struct TensorRef { var storageKey: String; var dtype: DType; var storageOffset: Int; var shape: [Int]; var stride: [Int] }
    final class ListBox { var items: [Value] = [] }
    final class DictBox { var items: [(Value, Value)] = [] }

    indirect enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
        case tuple([Value]), list(ListBox), dict(DictBox)
        case global(String)  // "module.name" of an allowed callable
        case storage(key: String, dtype: DType)
        case storageType(DType)
        case tensor(TensorRef)
        case mark
    }

    static let storageTypes: [String: DType] = [
        "torch.FloatStorage": .f32, "torch.HalfStorage": .f16, "torch.BFloat16Storage": .bf16,
        "torch.DoubleStorage": .f64, "torch.LongStorage": .i64, "torch.IntStorage": .i32,
        "torch.ShortStorage": .i16, "torch.CharStorage": .i8, "torch.ByteStorage": .u8,
    ]
    static let callables: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    ]

    let path: String
    var r: ByteReader
    var stack: [Value] = []
    var memo: [Int: Value] = [:]

    init(_ bytes: UnsafeRawBufferPointer, path: String) {
        self.path = path; r = ByteReader(bytes, path: path)
    }

    func reject(_ why: String) -> MoVQError { .pickleRejected("\(path): \(why)") }

    mutating func pop() throws -> Value {
        guard let v = stack.popLast() else { throw reject("stack underflow") }
        return v
    }

    mutating func popToMark() throws -> [Value] {
        guard let m = stack.lastIndex(where: { if case .mark = $0 { return true }; return false }) else { throw reject("missing MARK") }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }

    mutating func string(_ n: Int) throws -> String {
        String(decoding: try r.bytes(n, "pickle string"), as: UTF8.self)
    }

    mutating func memoize(_ key: Int) throws {
        guard let top = stack.last else { throw reject("memoize on empty stack") }
        guard memo.count < 10_000_000 else { throw reject("memo too large") }
        memo[key] = top
    }

    mutating func global(_ name: String) throws -> Value {
        if let t = Self.storageTypes[name] { return .storageType(t) }
        if Self.callables.contains(name) { return .global(name) }
        throw reject("global '\(name)' is not allowed (only tensors, storages and OrderedDict)")
    }

    /// Runs the pickle to STOP and returns the top-level object.
    mutating func run() throws -> Value {
        while true {
            let op = try r.u8("pickle opcode")
            if stack.count > 1_000_000 { throw reject("stack too deep") }
            switch op {
            case 0x80: _ = try r.u8()                                   // PROTO
            case 0x95: _ = try r.u64()                                  // FRAME
            case 0x2E: return try pop()                                 // STOP
            case 0x7D: stack.append(.dict(DictBox()))                   // EMPTY_DICT
            case 0x5D: stack.append(.list(ListBox()))                   // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                         // EMPTY_TUPLE
            case 0x28: stack.append(.mark)                              // MARK
            case 0x4E: stack.append(.none)                              // NONE
            case 0x88: stack.append(.bool(true))                        // NEWTRUE
            case 0x89: stack.append(.bool(false))                       // NEWFALSE
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: try r.u32()))))  // BININT
            case 0x4B: stack.append(.int(Int(try r.u8())))              // BININT1
            case 0x4D: stack.append(.int(Int(try r.u16())))             // BININT2
            case 0x8A:                                                  // LONG1
                let n = Int(try r.u8())
                guard n <= 8 else { throw reject("integer wider than 64 bits") }
                let b = try r.bytes(n, "long")
                var v: UInt64 = 0
                for i in 0..<n { v |= UInt64(b[i]) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && (b[n - 1] & 0x80) != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
                stack.append(.int(Int(Int64(bitPattern: v))))
            case 0x47:                                                  // BINFLOAT (big-endian)
                let b = try r.bytes(8, "float")
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x58: stack.append(.string(try string(Int(try r.u32()))))   // BINUNICODE
            case 0x8C: stack.append(.string(try string(Int(try r.u8()))))    // SHORT_BINUNICODE
            case 0x8D:                                                        // BINUNICODE8
                let n = try r.u64(); guard n < 1 << 40 else { throw reject("string too long") }
                stack.append(.string(try string(Int(n))))
            case 0x55: stack.append(.string(try string(Int(try r.u8()))))    // SHORT_BINSTRING
            case 0x54: stack.append(.string(try string(Int(try r.u32()))))   // BINSTRING
            case 0x43: stack.append(.bytes(Array(try r.bytes(Int(try r.u8()), "bytes"))))   // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(Array(try r.bytes(Int(try r.u32()), "bytes"))))  // BINBYTES
            case 0x71: try memoize(Int(try r.u8()))                      // BINPUT
            case 0x72: try memoize(Int(try r.u32()))                     // LONG_BINPUT
            case 0x94: try memoize(memo.count)                           // MEMOIZE
            case 0x68, 0x6A:                                             // BINGET, LONG_BINGET
                let k = op == 0x68 ? Int(try r.u8()) : Int(try r.u32())
                guard let v = memo[k] else { throw reject("memo key \(k) undefined") }
                stack.append(v)
            case 0x30: _ = try pop()                                     // POP
            case 0x31: _ = try popToMark()                               // POP_MARK
            case 0x32: guard let t = stack.last else { throw reject("DUP on empty stack") }; stack.append(t)
            case 0x74: stack.append(.tuple(try popToMark()))             // TUPLE
            case 0x85: let a = try pop(); stack.append(.tuple([a]))      // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))
            case 0x6C: let l = ListBox(); l.items = try popToMark(); stack.append(.list(l))   // LIST
            case 0x64:                                                                      // DICT
                let items = try popToMark(); let d = DictBox()
                guard items.count % 2 == 0 else { throw reject("odd DICT item count") }
                for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
                stack.append(.dict(d))
            case 0x61:                                                   // APPEND
                let v = try pop()
                guard case .list(let l) = stack.last else { throw reject("APPEND to a non-list") }
                l.items.append(v)
            case 0x65:                                                   // APPENDS
                let items = try popToMark()
                guard case .list(let l) = stack.last else { throw reject("APPENDS to a non-list") }
                l.items += items
            case 0x73:                                                   // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = stack.last else { throw reject("SETITEM on a non-dict") }
                d.items.append((k, v))
            case 0x75:                                                   // SETITEMS
                let items = try popToMark()
                guard case .dict(let d) = stack.last, items.count % 2 == 0 else { throw reject("SETITEMS on a non-dict") }
                for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
            case 0x63:                                                   // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                stack.append(try global("\(module).\(name)"))
            case 0x93:                                                   // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else { throw reject("STACK_GLOBAL needs strings") }
                stack.append(try global("\(module).\(name)"))
            case 0x51:                                                   // BINPERSID
                stack.append(try persistentLoad(try pop()))
            case 0x52:                                                   // REDUCE
                let args = try pop(), fn = try pop()
                stack.append(try reduce(fn, args))
            case 0x81:                                                   // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try reduce(cls, args))
            case 0x62:                                                   // BUILD: state of dicts/tensors is metadata we ignore
                _ = try pop()
                guard let top = stack.last else { throw reject("BUILD on empty stack") }
                switch top {
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
        guard case .tuple(let t) = pid, t.count >= 5, case .string("storage") = t[0],
              case .storageType(let dtype) = t[1], case .string(let key) = t[2] else {
            throw reject("persistent id is not a torch storage reference")
        }
        return .storage(key: key, dtype: dtype)
    }

    func reduce(_ fn: Value, _ args: Value) throws -> Value {
        guard case .global(let name) = fn, case .tuple(let a) = args else { throw reject("REDUCE of a non-callable") }
        switch name {
        case "collections.OrderedDict":
            return .dict(DictBox())
        case "torch._utils._rebuild_parameter":
            guard let first = a.first, case .tensor = first else { throw reject("_rebuild_parameter without a tensor") }
            return first
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case .storage(let key, let dtype) = a[0], case .int(let off) = a[1],
                  case .tuple(let size) = a[2], case .tuple(let stride) = a[3] else {
                throw reject("malformed _rebuild_tensor_v2 arguments")
            }
            func ints(_ v: [Value]) throws -> [Int] {
                try v.map { guard case .int(let i) = $0 else { throw reject("non-integer tensor size") }; return i }
            }
            return .tensor(TensorRef(storageKey: key, dtype: dtype, storageOffset: off, shape: try ints(size), stride: try ints(stride)))
        default:
            throw reject("call of '\(name)'")
        }
    }
}
