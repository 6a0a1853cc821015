/* GPU discovery without CUDA: parsing the driver's /proc information files, bus ordering, and
 * choosing devices by index or UUID. (NVML itself needs a driver; on the GPU machine the
 * supervisor logs which source it used.) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/gpu.h"
#include "tests/test.h"

/* The layout of /proc/driver/nvidia/gpus/<bus>/information (driver 5xx): tab-aligned. */
static const char *info_text(const char *model, const char *uuid, const char *bus)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "Model: \t\t %s\nIRQ:   \t\t 163\nGPU UUID: \t %s\nVideo BIOS: \t 96.00.99.00.01\n"
             "Bus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\n"
             "Bus Location: \t %s\nDevice Minor: \t 0\nGPU Excluded:\t No\n",
             model, uuid, bus);
    return buf;
}

TEST(test_parse_information)
{
    struct sv_gpu g;
    CHECK_EQ_INT(sv_gpu_parse_information(info_text("NVIDIA H100 80GB HBM3",
                                                    "GPU-0a1b2c3d-0000-1111-2222-333344445555",
                                                    "0000:18:00.0"),
                                          &g),
                 0);
    CHECK_EQ_STR(g.name, "NVIDIA H100 80GB HBM3");
    CHECK_EQ_STR(g.uuid, "GPU-0a1b2c3d-0000-1111-2222-333344445555");
    CHECK_EQ_STR(g.bus, "0000:18:00.0");
    CHECK_EQ_INT(sv_gpu_parse_information("Model: x\nBus Location: 0000:01:00.0\n", &g), -1);
    CHECK_EQ_INT(sv_gpu_parse_information("GPU UUID: not-a-uuid\n", &g), -1);
}

static void write_gpu(const char *root, const char *bus, const char *model, const char *uuid)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, bus);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/information", root, bus);
    FILE *f = fopen(path, "w");
    fputs(info_text(model, uuid, bus), f);
    fclose(f);
}

TEST(test_discover_proc_sorted_by_bus)
{
    char root[] = "/tmp/vl-gpus-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    write_gpu(root, "0000:c1:00.0", "NVIDIA H200", "GPU-cccc0000-0000-0000-0000-000000000002");
    write_gpu(root, "0000:18:00.0", "NVIDIA H200", "GPU-aaaa0000-0000-0000-0000-000000000000");
    write_gpu(root, "0000:3b:00.0", "NVIDIA H200", "GPU-bbbb0000-0000-0000-0000-000000000001");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/0000:ff:00.0", root); /* a device dir without information */
    mkdir(dir, 0755);
    struct sv_gpu g[8];
    char err[256];
    int n = sv_gpu_discover_proc(root, g, 8, err, sizeof err);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_STR(g[0].bus, "0000:18:00.0");
    CHECK_EQ_STR(g[2].uuid, "GPU-cccc0000-0000-0000-0000-000000000002");
    CHECK_EQ_INT(g[2].index, 2);
    CHECK_EQ_INT(sv_gpu_discover_proc("/nonexistent/vl", g, 8, err, sizeof err), -1);
    CHECK_CONTAINS(err, "/nonexistent/vl");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST(test_select)
{
    struct sv_gpu all[3] = {{0, "GPU-aaaa-1", "H100", ""},
                            {1, "GPU-aabb-2", "H100", ""},
                            {2, "GPU-cccc-3", "H100", ""}};
    int picked[8];
    char err[256];
    CHECK_EQ_INT(sv_gpu_select(all, 3, "all", picked, 8, err, sizeof err), 3);
    CHECK_EQ_INT(sv_gpu_select(all, 3, NULL, picked, 8, err, sizeof err), 3);
    CHECK_EQ_INT(sv_gpu_select(all, 3, "2,0", picked, 8, err, sizeof err), 2);
    CHECK_EQ_INT(picked[0], 2);
    CHECK_EQ_INT(picked[1], 0);
    CHECK_EQ_INT(sv_gpu_select(all, 3, "GPU-cc", picked, 8, err, sizeof err), 1);
    CHECK_EQ_INT(picked[0], 2);
    CHECK_EQ_INT(sv_gpu_select(all, 3, "GPU-aa", picked, 8, err, sizeof err), -1);
    CHECK_CONTAINS(err, "more than one");
    CHECK_EQ_INT(sv_gpu_select(all, 3, "7", picked, 8, err, sizeof err), -1);
    CHECK_CONTAINS(err, "\"7\" matches no GPU");
    CHECK_EQ_INT(sv_gpu_select(all, 3, "1,GPU-aabb", picked, 8, err, sizeof err), -1);
    CHECK_CONTAINS(err, "twice");
    CHECK_EQ_INT(sv_gpu_select(all, 3, "0,,1", picked, 8, err, sizeof err), -1);
}

TEST(test_nvml_absent_is_an_error_not_a_crash)
{
    /* On a machine without the NVIDIA driver, NVML fails cleanly (the CI machine has none). */
    struct sv_gpu g[4];
    char err[256] = "";
    int n = sv_gpu_discover_nvml(g, 4, err, sizeof err);
    if (n < 0)
        CHECK(err[0] != 0);
    else
        CHECK(n <= 4);
}

TEST_MAIN(test_parse_information, test_discover_proc_sorted_by_bus, test_select,
          test_nvml_absent_is_an_error_not_a_crash)
