-- uartproxy.lua: Wireshark / tshark dissector for uartproxy serial-line captures.
--
--   wireshark -X lua_script:scripts/uartproxy.lua capture.pcapng
--   tshark -X lua_script:scripts/uartproxy.lua -r capture.pcapng -V
--
-- Two link types (docs/sniff.md):
--   LINKTYPE_USER0 (147), written by `uartproxy sniff --pcapng`: one packet per
--     SLIP frame, [direction][status] + the unescaped frame.
--   LINKTYPE_USER1 (148), written by a capture tap (`serve --mirror`): chunks of
--     raw line bytes, [direction] + bytes.
-- Frames are native uartproxy frames (docs/protocol.md §3, version 4, CRC-32)
-- or seed v3 frames (§3.5, version 3, CRC-16); payloads are CBOR and are handed
-- to Wireshark's CBOR dissector.
--
-- Works with the Lua 5.2 of Wireshark 3.x/4.0 (bit32) and later versions
-- (their bundled "bit" library).

local bitlib = bit32 or bit
local band, bor, bxor, rshift, lshift = bitlib.band, bitlib.bor, bitlib.bxor, bitlib.rshift, bitlib.lshift

-- u32 maps LuaBitOp's signed results to 0 .. 2^32-1.
local function u32(x)
    if x < 0 then return x + 4294967296 end
    return x
end

-- protocol: must match internal/capture/const.go and docs/sniff.md
local DIRS = { [0] = "host→device", [1] = "device→host", [2] = "unknown" }
local DIR_SHORT = { [0] = "H>D", [1] = "D>H", [2] = "?" }
local STATUS = { [0] = "frame", [1] = "SLIP frame too long (discarded)", [2] = "noise" }
-- protocol: must match docs/protocol.md §3.2, §3.5, §7.2
local TYPES = { [1] = "DATA", [2] = "ACK", [3] = "HELLO" }
local V3TYPES = { [1] = "REQ", [2] = "RESP", [3] = "ACK" }
local MSGTYPES = { [1] = "OPEN", [2] = "OPEN_OK", [3] = "RESET", [4] = "DATA", [5] = "FIN", [6] = "CREDIT",
    [7] = "DGRAM", [8] = "ACCEPT", [9] = "REQUEST", [10] = "RESPONSE", [11] = "EVENT" }

local p = Proto("uartproxy", "uartproxy serial line")
local praw = Proto("uartproxy_raw", "uartproxy raw line bytes")

local f = {
    dir        = ProtoField.uint8("uartproxy.dir", "Direction", base.DEC, DIRS),
    status     = ProtoField.uint8("uartproxy.status", "Status", base.DEC, STATUS),
    version    = ProtoField.uint8("uartproxy.version", "Version", base.DEC, { [3] = "seed v3", [4] = "native" }),
    type       = ProtoField.uint8("uartproxy.type", "Frame type", base.DEC, TYPES, 0x0f),
    flags      = ProtoField.uint8("uartproxy.flags", "Flags", base.HEX, nil, 0xf0),
    ackreq     = ProtoField.bool("uartproxy.flags.ackreq", "ACKREQ", 8, nil, 0x10),
    seq        = ProtoField.uint16("uartproxy.seq", "Seq", base.DEC),
    ack        = ProtoField.uint16("uartproxy.ack", "Ack", base.DEC),
    sack       = ProtoField.uint32("uartproxy.sack", "Sack", base.HEX),
    payload    = ProtoField.bytes("uartproxy.payload", "Payload"),
    payloadlen = ProtoField.uint32("uartproxy.payload_len", "Payload length", base.DEC),
    crc        = ProtoField.uint32("uartproxy.crc", "CRC-32", base.HEX),
    crcstatus  = ProtoField.string("uartproxy.crc.status", "CRC status"),
    v3type     = ProtoField.uint8("uartproxy.v3.type", "Seed frame type", base.DEC, V3TYPES),
    v3seq      = ProtoField.uint16("uartproxy.v3.seq", "Seed seq", base.DEC),
    v3plen     = ProtoField.uint16("uartproxy.v3.plen", "Payload length", base.DEC),
    v3crc      = ProtoField.uint16("uartproxy.v3.crc", "CRC-16", base.HEX),
    v3op       = ProtoField.string("uartproxy.v3.op", "Op"),
    msg        = ProtoField.bytes("uartproxy.msg", "Message"),
    msgtype    = ProtoField.uint8("uartproxy.msg.type", "Message type", base.DEC, MSGTYPES),
    msgsid     = ProtoField.uint32("uartproxy.msg.sid", "Stream id", base.DEC),
    msgdata    = ProtoField.bytes("uartproxy.msg.data", "Data"),
    msgdatalen = ProtoField.uint32("uartproxy.msg.data_len", "Data length", base.DEC),
    noise      = ProtoField.bytes("uartproxy.noise", "Noise"),
    origlen    = ProtoField.uint32("uartproxy.orig_len", "Length on the line", base.DEC),
    raw        = ProtoField.bytes("uartproxy.raw", "Line bytes"),
}
p.fields = { f.dir, f.status, f.version, f.type, f.flags, f.ackreq, f.seq, f.ack, f.sack, f.payload,
    f.payloadlen, f.crc, f.crcstatus, f.v3type, f.v3seq, f.v3plen, f.v3crc, f.v3op, f.msg, f.msgtype,
    f.msgsid, f.msgdata, f.msgdatalen, f.noise, f.origlen }
local fr = {
    dir = ProtoField.uint8("uartproxy_raw.dir", "Direction", base.DEC, DIRS),
    raw = ProtoField.bytes("uartproxy_raw.bytes", "Line bytes"),
}
praw.fields = { fr.dir, fr.raw }

local ex = {
    crc      = ProtoExpert.new("uartproxy.crc.bad", "CRC mismatch", expert.group.CHECKSUM, expert.severity.ERROR),
    short    = ProtoExpert.new("uartproxy.short", "Frame too short", expert.group.MALFORMED, expert.severity.ERROR),
    length   = ProtoExpert.new("uartproxy.bad_length", "Bad length", expert.group.MALFORMED, expert.severity.ERROR),
    noise    = ProtoExpert.new("uartproxy.noise.expert", "Line noise between frames", expert.group.PROTOCOL, expert.severity.WARN),
    toolong  = ProtoExpert.new("uartproxy.too_long", "SLIP frame over the limit, discarded", expert.group.MALFORMED, expert.severity.ERROR),
    cbor     = ProtoExpert.new("uartproxy.cbor", "Payload is not a CBOR sequence", expert.group.MALFORMED, expert.severity.ERROR),
    badtype  = ProtoExpert.new("uartproxy.bad_type", "Unknown frame type", expert.group.MALFORMED, expert.severity.ERROR),
}
p.experts = { ex.crc, ex.short, ex.length, ex.noise, ex.toolong, ex.cbor, ex.badtype }

-- CRC-32/IEEE (docs/protocol.md §4) and CRC-16/CCITT-FALSE (§4.4).
local crc32_table = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0xEDB88320) else c = rshift(c, 1) end
    end
    crc32_table[i] = c
end

local function crc32(tvb, off, len)
    local c = 0xFFFFFFFF
    local bytes = tvb:raw(off, len)
    for i = 1, #bytes do
        c = bxor(crc32_table[band(bxor(c, bytes:byte(i)), 0xff)], rshift(c, 8))
    end
    return u32(bxor(c, 0xFFFFFFFF))
end

local function crc16(s)
    local c = 0xFFFF
    for i = 1, #s do
        c = bxor(c, lshift(s:byte(i), 8))
        for _ = 1, 8 do
            if band(c, 0x8000) ~= 0 then c = band(bxor(lshift(c, 1), 0x1021), 0xFFFF)
            else c = band(lshift(c, 1), 0xFFFF) end
        end
    end
    return c
end

-- CBOR: just enough to find item boundaries and read heads.
local function cbor_head(tvb, off, len)
    if off >= len then return nil end
    local ib = tvb(off, 1):uint()
    local major, ai = rshift(ib, 5), band(ib, 0x1f)
    if ai < 24 then return major, ai, 1 end
    local n = ({ [24] = 1, [25] = 2, [26] = 4, [27] = 8 })[ai]
    if n == nil or off + 1 + n > len then return nil end
    local arg
    if n == 8 then arg = tvb(off + 1, 8):uint64():tonumber() else arg = tvb(off + 1, n):uint() end
    return major, arg, 1 + n
end

-- cbor_skip returns the offset after the item at off, or nil.
local function cbor_skip(tvb, off, len, depth)
    if depth > 16 then return nil end
    local major, arg, hl = cbor_head(tvb, off, len)
    if major == nil then return nil end
    off = off + hl
    if major == 2 or major == 3 then
        if off + arg > len then return nil end
        return off + arg
    elseif major == 4 or major == 5 then
        local items = arg
        if major == 5 then items = 2 * arg end
        if items > len - off then return nil end
        for _ = 1, items do
            off = cbor_skip(tvb, off, len, depth + 1)
            if off == nil then return nil end
        end
        return off
    elseif major == 6 then
        return cbor_skip(tvb, off, len, depth + 1)
    end
    return off -- 0, 1, 7: the head is the item
end

local cbor_dissector = nil
pcall(function() cbor_dissector = Dissector.get("cbor") end)

local function add_cbor(tvb, pinfo, tree, off, n)
    if cbor_dissector ~= nil and n > 0 then
        pcall(function() cbor_dissector:call(tvb(off, n):tvb(), pinfo, tree) end)
    end
end

-- text_at returns the text string at off, or nil.
local function text_at(tvb, off, len)
    local major, arg, hl = cbor_head(tvb, off, len)
    if major ~= 3 or off + hl + arg > len then return nil end
    return tvb(off + hl, arg):string()
end

-- map_text returns the text value of the text key k in the map at off.
local function map_text(tvb, off, len, k)
    local major, n, hl = cbor_head(tvb, off, len)
    if major ~= 5 then return nil end
    off = off + hl
    for _ = 1, n do
        local key = text_at(tvb, off, len)
        local vstart = cbor_skip(tvb, off, len, 0)
        if vstart == nil then return nil end
        if key == k then return text_at(tvb, vstart, len) end
        off = cbor_skip(tvb, vstart, len, 0)
        if off == nil then return nil end
    end
    return nil
end

-- messages dissects a DATA payload (docs/protocol.md §7.1) and returns a
-- summary for the Info column.
local function messages(tvb, pinfo, tree, off, len)
    local parts = {}
    while off < len do
        local stop = cbor_skip(tvb, off, len, 0)
        if stop == nil then
            tree:add_proto_expert_info(ex.cbor)
            parts[#parts + 1] = "malformed"
            break
        end
        local item = tree:add(f.msg, tvb(off, stop - off))
        local major, n, hl = cbor_head(tvb, off, stop)
        local name = "?"
        if major == 4 and n >= 1 then
            local tmaj, t, thl = cbor_head(tvb, off + hl, stop)
            if tmaj == 0 then
                item:add(f.msgtype, tvb(off + hl, thl), t)
                name = MSGTYPES[t] or ("type" .. t)
                local pos = off + hl + thl
                if t >= 1 and t <= 8 and n >= 2 then
                    local smaj, sid, shl = cbor_head(tvb, pos, stop)
                    if smaj == 0 then
                        item:add(f.msgsid, tvb(pos, shl), sid)
                        name = name .. " sid=" .. sid
                        pos = pos + shl
                    end
                end
                if t == 4 and n >= 3 then -- DATA: [4, sid, bytes]
                    local dmaj, dlen, dhl = cbor_head(tvb, pos, stop)
                    if dmaj == 2 and pos + dhl + dlen <= stop then
                        item:add(f.msgdatalen, tvb(pos, dhl), dlen)
                        if dlen > 0 then item:add(f.msgdata, tvb(pos + dhl, dlen)) end
                        name = name .. " len=" .. dlen
                    end
                end
            end
        end
        item:set_text("Message: " .. name)
        add_cbor(tvb, pinfo, item, off, stop - off)
        parts[#parts + 1] = name
        off = stop
    end
    return table.concat(parts, ", ")
end

-- native dissects a frame of version 4 (docs/protocol.md §3) and returns the
-- Info text.
local function native(tvb, pinfo, tree, off, len)
    local n = len - off
    if n < 14 then
        tree:add_proto_expert_info(ex.short)
        return "v4 short frame"
    end
    local tf = tvb(off + 1, 1):uint()
    local t = band(tf, 0x0f)
    tree:add(f.type, tvb(off + 1, 1))
    tree:add(f.flags, tvb(off + 1, 1))
    tree:add(f.ackreq, tvb(off + 1, 1))
    tree:add_le(f.seq, tvb(off + 2, 2))
    tree:add_le(f.ack, tvb(off + 4, 2))
    tree:add_le(f.sack, tvb(off + 6, 4))
    local plen = n - 14
    tree:add(f.payloadlen, plen)
    local stored = tvb(len - 4, 4):le_uint()
    local crc_item = tree:add_le(f.crc, tvb(len - 4, 4))
    local good = crc32(tvb, off, n - 4) == stored
    tree:add(f.crcstatus, good and "good" or "bad")
    local name = TYPES[t] or ("type" .. t)
    local info = name
    if t == 1 then info = info .. " seq=" .. tvb(off + 2, 2):le_uint() end
    if t ~= 3 then
        info = info .. " ack=" .. tvb(off + 4, 2):le_uint()
        local sack = tvb(off + 6, 4):le_uint()
        if sack ~= 0 then info = info .. string.format(" sack=0x%x", sack) end
    end
    if band(tf, 0x10) ~= 0 then info = info .. " ACKREQ" end
    if not good then
        crc_item:add_proto_expert_info(ex.crc)
        if plen > 0 then tree:add(f.payload, tvb(off + 10, plen)) end
        return info .. " [CRC BAD]"
    end
    if TYPES[t] == nil then
        tree:add_proto_expert_info(ex.badtype)
        return info .. " [BAD TYPE]"
    end
    if (t == 2 and plen > 0) or (t == 1 and plen == 0) then
        tree:add_proto_expert_info(ex.length)
        return info .. " [BAD LENGTH]"
    end
    if plen > 0 then
        local pl = tree:add(f.payload, tvb(off + 10, plen))
        if t == 1 then
            local summary = messages(tvb, pinfo, pl, off + 10, len - 4)
            info = info .. " [" .. summary .. "]"
        else
            add_cbor(tvb, pinfo, pl, off + 10, plen)
        end
    end
    return info
end

-- seed dissects a frame of version 3 (docs/protocol.md §3.5, §14).
local function seed(tvb, pinfo, tree, off, len)
    local n = len - off
    if n < 8 then
        tree:add_proto_expert_info(ex.short)
        return "v3 short frame"
    end
    local t = tvb(off + 1, 1):uint()
    local seq = tvb(off + 2, 2):le_uint()
    local plen = tvb(off + 4, 2):le_uint()
    tree:add(f.v3type, tvb(off + 1, 1))
    tree:add_le(f.v3seq, tvb(off + 2, 2))
    tree:add_le(f.v3plen, tvb(off + 4, 2))
    local crc_item = tree:add_le(f.v3crc, tvb(off + 6, 2))
    local info = "v3 " .. (V3TYPES[t] or ("type" .. t)) .. " seq=" .. seq
    if n ~= 8 + plen then
        tree:add_proto_expert_info(ex.length)
        return info .. " [BAD LENGTH]"
    end
    local good = crc16(tvb:raw(off, 6) .. tvb:raw(off + 8, plen)) == tvb(off + 6, 2):le_uint()
    tree:add(f.crcstatus, good and "good" or "bad")
    if not good then
        crc_item:add_proto_expert_info(ex.crc)
        return info .. " [CRC BAD]"
    end
    if plen > 0 then
        local pl = tree:add(f.payload, tvb(off + 8, plen))
        if t == 1 then
            local op = map_text(tvb, off + 8, len, "op")
            if op ~= nil then
                tree:add(f.v3op, op)
                info = info .. " op=" .. op
            end
        end
        add_cbor(tvb, pinfo, pl, off + 8, plen)
    end
    return info
end

function p.dissector(tvb, pinfo, root)
    local len = tvb:len()
    if len < 2 then return 0 end
    pinfo.cols.protocol = "uartproxy"
    local tree = root:add(p, tvb(0, len))
    local dir = tvb(0, 1):uint()
    local status = tvb(1, 1):uint()
    tree:add(f.dir, tvb(0, 1))
    tree:add(f.status, tvb(1, 1))
    local prefix = (DIR_SHORT[dir] or "?") .. " "
    if status == 1 then
        tree:add(f.origlen, tvb:reported_len() - 2)
        tree:add_proto_expert_info(ex.toolong)
        pinfo.cols.info = prefix .. "SLIP frame too long, discarded (" .. (tvb:reported_len() - 2) .. " bytes)"
        return len
    end
    if status == 2 or len == 2 then
        if len > 2 then tree:add(f.noise, tvb(2, len - 2)) end
        tree:add_proto_expert_info(ex.noise)
        pinfo.cols.info = prefix .. "noise, " .. (len - 2) .. " bytes"
        return len
    end
    local v = tvb(2, 1):uint()
    local info
    if v == 4 then
        tree:add(f.version, tvb(2, 1))
        info = "v4 " .. native(tvb, pinfo, tree, 2, len)
    elseif v == 3 then
        tree:add(f.version, tvb(2, 1))
        info = seed(tvb, pinfo, tree, 2, len)
    else
        tree:add(f.noise, tvb(2, len - 2))
        tree:add_proto_expert_info(ex.noise)
        info = "noise, " .. (len - 2) .. " bytes"
    end
    pinfo.cols.info = prefix .. info
    return len
end

function praw.dissector(tvb, pinfo, root)
    local len = tvb:len()
    if len < 1 then return 0 end
    pinfo.cols.protocol = "uartproxy raw"
    local tree = root:add(praw, tvb(0, len))
    local dir = tvb(0, 1):uint()
    tree:add(fr.dir, tvb(0, 1))
    if len > 1 then tree:add(fr.raw, tvb(1, len - 1)) end
    pinfo.cols.info = (DIR_SHORT[dir] or "?") .. " " .. (len - 1) .. " line bytes (decode with: uartproxy sniff FILE)"
    return len
end

-- WTAP_ENCAP_USER0 and USER1 are 45 and 46.
local encaps = wtap_encaps or wtap
local encap_table = DissectorTable.get("wtap_encap")
encap_table:add((encaps and encaps.USER0) or 45, p)
encap_table:add((encaps and encaps.USER1) or 46, praw)
