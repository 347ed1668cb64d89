"""A minimal re-statement of the public DRCNet code's arithmetic, written from the spec (sections 1, 2, 7),
with the public code's module names. Used only by tests to check `drcnet.load_official`; it shares no code with
drcnet/, on purpose, so a translation or arithmetic error on either side shows up as a mismatch."""
import torch
import torch.nn as nn


class SelfAwareAffine(nn.Module):      # norm.sa
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.gamma_conv = nn.Conv2d(1, 1, 7, padding=3)
        self.beta_conv = nn.Conv2d(1, 1, 7, padding=3)

    def forward(self, x):
        m = torch.sigmoid(self.conv1(torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True)[0]], 1)))
        return m, self.gamma_conv(m), self.beta_conv(m)


class RNBinaryLabel(nn.Module):        # norm.rn
    def __init__(self, c):
        super().__init__()
        self.bn_norm = nn.InstanceNorm2d(c, affine=True)

    def rn(self, region, mask):
        b, _, h, w = region.shape
        s = region.sum(dim=[0, 2, 3])
        sr = mask.sum(dim=[0, 2, 3])
        sr[sr == 0] = 1
        mu = s / sr
        return self.bn_norm(region + (1 - mask) * mu[None, :, None, None]) * torch.sqrt(sr / (b * h * w))[None, :, None, None]

    def forward(self, x, label):
        return self.rn(x * label, label) + self.rn(x * (1 - label), 1 - label)


class RNL(nn.Module):                  # norm
    def __init__(self, c, threshold):
        super().__init__()
        self.sa, self.rn, self.threshold = SelfAwareAffine(), RNBinaryLabel(c), threshold

    def forward(self, x):
        m, gamma, beta = self.sa(x)
        mask = torch.zeros_like(m)
        mask[m.detach() >= self.threshold] = 1
        return self.rn(x, mask.expand(x.size())) * (1 + gamma) + beta


def simam(x, lam):
    n = x.shape[2] * x.shape[3] - 1
    d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
    return x * torch.sigmoid(d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + lam)) + 0.5)


class DownBlock(nn.Module):
    def __init__(self, cin, c, downsample, csff, threshold, lam):
        super().__init__()
        self.conv_1 = nn.Conv2d(cin, c, 3, padding=1)
        self.conv_2 = nn.Conv2d(cin, c, 3, padding=1)
        self.identity = nn.Conv2d(cin, c, 1)
        self.norm = RNL(c // 2, threshold)
        self.act, self.lam = nn.LeakyReLU(0.2), lam
        if downsample and csff:
            self.csff_enc = nn.Conv2d(c, c, 3, padding=1)
            self.csff_dec = nn.Conv2d(c, c, 3, padding=1)
        self.downsample = nn.Conv2d(c, c, 4, 2, 1, bias=False) if downsample else None

    def forward(self, x, enc=None, dec=None):
        a1, a2 = torch.chunk(self.conv_1(x), 2, dim=1)
        s = self.act(torch.cat([self.norm(a1), a2], 1))
        e = self.act(simam(self.conv_2(x), self.lam))
        out = s * e + self.identity(x)
        if enc is not None:
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        return (self.downsample(out), out) if self.downsample is not None else out


class ConvBlock(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.conv_1, self.conv_2 = nn.Conv2d(cin, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.identity, self.act = nn.Conv2d(cin, c, 1), nn.LeakyReLU(0.2)

    def forward(self, x):
        return self.act(self.conv_2(self.act(self.conv_1(x)))) + self.identity(x)


class UpBlock(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.up, self.conv_block = nn.ConvTranspose2d(cin, c, 2, 2), ConvBlock(cin, c)

    def forward(self, x, bridge):
        return self.conv_block(torch.cat([self.up(x), bridge], 1))


class SAMRef(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, 3, 3, padding=1)
        self.conv3 = nn.Conv2d(3, c, 3, padding=1)

    def forward(self, x, img):
        out = self.conv2(x) + img
        return self.conv1(x) * torch.sigmoid(self.conv3(out)) + x, out


class OfficialDRCNet(nn.Module):
    def __init__(self, wf=16, depth=4, threshold=0.8, lam=1e-4):
        super().__init__()
        self.depth = depth
        self.conv_01, self.conv_02 = nn.Conv2d(3, wf, 3, padding=1), nn.Conv2d(3, wf, 3, padding=1)
        self.down_path_1, self.down_path_2 = nn.ModuleList(), nn.ModuleList()
        prev = wf
        for i in range(depth):
            down = i + 1 < depth
            self.down_path_1.append(DownBlock(prev, wf * 2 ** i, down, False, threshold, lam))
            self.down_path_2.append(DownBlock(prev, wf * 2 ** i, down, down, threshold, lam))
            prev = wf * 2 ** i
        self.up_path_1, self.up_path_2 = nn.ModuleList(), nn.ModuleList()
        self.skip_conv_1, self.skip_conv_2 = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(depth - 1)):
            c = wf * 2 ** i
            self.up_path_1.append(UpBlock(prev, c))
            self.up_path_2.append(UpBlock(prev, c))
            self.skip_conv_1.append(nn.Conv2d(c, c, 3, padding=1))
            self.skip_conv_2.append(nn.Conv2d(c, c, 3, padding=1))
            prev = c
        self.sam12, self.cat12 = SAMRef(prev), nn.Conv2d(2 * prev, prev, 1)
        self.last = nn.Conv2d(prev, 3, 3, padding=1)

    def forward(self, image):
        x1, encs, decs = self.conv_01(image), [], []
        for i, down in enumerate(self.down_path_1):
            if i + 1 < self.depth:
                x1, up = down(x1)
                encs.append(up)
            else:
                x1 = down(x1)
        for i, up in enumerate(self.up_path_1):
            x1 = up(x1, self.skip_conv_1[i](encs[-i - 1]))
            decs.append(x1)
        feat, out1 = self.sam12(x1, image)
        x2 = self.cat12(torch.cat([self.conv_02(image), feat], 1))
        blocks = []
        for i, down in enumerate(self.down_path_2):
            if i + 1 < self.depth:
                x2, up = down(x2, encs[i], decs[-i - 1])
                blocks.append(up)
            else:
                x2 = down(x2)
        for i, up in enumerate(self.up_path_2):
            x2 = up(x2, self.skip_conv_2[i](blocks[-i - 1]))
        return out1, self.last(x2) + image
