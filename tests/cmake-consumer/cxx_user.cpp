// qkv.h from C++: a GQA decode call (4 query heads on 1 KV head, all keys
// equal, so every output is that key's value row) and an error's detail.
#include <qkv.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

int main()
{
    const size_t heads = 4, kv_len = 10, dim = 8;
    std::vector<float> q(heads * dim, 0.5f), k(kv_len * dim, 0.25f), v(kv_len * dim), o(heads * dim);
    for (size_t j = 0; j < kv_len; j++)
        for (size_t c = 0; c < dim; c++)
            v[j * dim + c] = float(c);
    qkv_attention_desc d{};
    d.batch = 1, d.q_heads = heads, d.kv_heads = 1, d.q_len = 1, d.kv_len = kv_len;
    d.head_dim = d.v_head_dim = dim;
    d.q = {q.data(), QKV_F32, heads * dim, dim, dim};
    d.k = {k.data(), QKV_F32, kv_len * dim, kv_len * dim, dim};
    d.v = {v.data(), QKV_F32, kv_len * dim, kv_len * dim, dim};
    d.o = {o.data(), heads * dim, dim, dim, QKV_F32};
    d.scale = qkv_default_scale(dim);
    if (qkv_attention(&d) != QKV_OK) {
        std::printf("qkv_attention: %s\n", qkv_last_error_detail());
        return 1;
    }
    for (size_t i = 0; i < heads * dim; i++)
        if (std::fabs(o[i] - float(i % dim)) > 1e-5f) {
            std::printf("o[%zu] = %g, want %zu\n", i, o[i], i % dim);
            return 1;
        }
    d.kv_heads = 3;
    if (qkv_attention(&d) != QKV_ERR_ARG ||
        std::strstr(qkv_last_error_detail(), "not a multiple of kv_heads 3") == nullptr) {
        std::printf("the detail is \"%s\"\n", qkv_last_error_detail());
        return 1;
    }
    std::printf("c++: qkv %s on %s: ok\n", qkv_version_string(), qkv_isa_name(qkv_isa_get()));
    return 0;
}
